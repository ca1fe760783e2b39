"""A text tree of a model's modules with parameter counts.

Each line: name, module type (with sizes for Linear/LayerNorm), and the number of distinct
parameters under it. A module that is the same object as one printed earlier (shared
embeddings) is shown as "= <first name>" without a count (the root's total counts it once);
a ModuleList of structurally equal layers prints its first layer and "× N".
"""

from __future__ import annotations

from torch import nn


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        bias = "" if module.bias is not None else ", no bias"
        return f"Linear({module.in_features} → {module.out_features}{bias})"
    if isinstance(module, nn.LayerNorm):
        return f"LayerNorm({module.normalized_shape[0]})"
    if type(module).__name__ == "PositionalEncoding":
        return f"PositionalEncoding({module.kind}, max_len {module.max_len})"
    if type(module).__name__ == "TokenEmbedding":
        scale = ", ×√d_model" if module.scale is not None else ""
        return f"TokenEmbedding({module.weight.shape[0]} × {module.weight.shape[1]}{scale})"
    if isinstance(module, nn.Dropout) or type(module).__name__ == "Dropout":
        return f"Dropout(p={module.p})"
    return type(module).__name__


def _count(module: nn.Module) -> int:
    """Distinct parameters under `module` (a tensor shared inside it counts once)."""
    return sum(p.numel() for p in module.parameters())


def _same_structure(modules: list[nn.Module]) -> bool:
    first = [(n, tuple(p.shape)) for n, p in modules[0].named_parameters()]
    return all(
        type(m) is type(modules[0])
        and [(n, tuple(p.shape)) for n, p in m.named_parameters()] == first
        for m in modules[1:]
    )


def model_tree(model: nn.Module, max_depth: int = 4) -> str:
    """The module tree of `model` as text, `max_depth` levels below the root."""
    first_name: dict[int, str] = {}
    lines = [f"{type(model).__name__}  {_count(model):,} parameters"]

    def walk(module: nn.Module, prefix: str, path: str, depth: int) -> None:
        # _modules, not named_children(): keep a shared module's second name visible.
        children = [(n, c) for n, c in module._modules.items() if c is not None]
        for i, (name, child) in enumerate(children):
            last = i == len(children) - 1
            branch, indent = ("└─ ", "   ") if last else ("├─ ", "│  ")
            full = f"{path}.{name}" if path else name
            if id(child) in first_name:
                lines.append(f"{prefix}{branch}{name}  = {first_name[id(child)]} (shared)")
                continue
            first_name[id(child)] = full
            layers = list(child.children()) if isinstance(child, nn.ModuleList) else []
            if layers and _same_structure(layers):
                n = _count(child)
                lines.append(
                    f"{prefix}{branch}{name}  {len(layers)} × "
                    f"{type(layers[0]).__name__}  {n:,}  ({n // len(layers):,} each)"
                )
                if depth < max_depth:
                    first_name[id(layers[0])] = f"{full}.0"
                    walk(layers[0], prefix + indent, f"{full}.0", depth + 1)
                continue
            n = _count(child)
            lines.append(f"{prefix}{branch}{name}  {_describe(child)}  {n:,}")
            if depth < max_depth:
                walk(child, prefix + indent, full, depth + 1)

    walk(model, "", "", 1)
    if getattr(model, "output_proj", False) is None:
        lines.append("(output layer: tied to the target embedding, no extra parameters)")
    return "\n".join(lines)
