"""The package's import graph, read from the source (no import is executed).

    python scripts/module_graph.py              # the package graph as a Mermaid block
    python scripts/module_graph.py --check      # exit 1 on a module cycle or an import
                                                # of the package inside a function
    python scripts/module_graph.py --write docs/architecture.md   # refresh the generated block

Nodes are the packages of `transformer` (`transformer.layers`, `transformer.training`, ...) and
its top-level modules; an edge A -> B means some module of A imports one of B. The check looks
at modules: a cycle among them (A imports B imports ... A) is reported with its path.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "transformer"
BEGIN, END = "<!-- module-graph:begin -->", "<!-- module-graph:end -->"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an `from X import y` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports(path: Path, modules: set[str]) -> tuple[set[str], list[tuple[int, str]]]:
    """(modules of the package imported at module level, [(line, name)] imported inside a
    function). `from pkg import name` counts as importing `pkg.name` when that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module, is_package = module_name(path), path.name == "__init__.py"
    top: set[str] = set()
    inner: list[tuple[int, str]] = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        names = [n for n in names if n == "transformer" or n.startswith("transformer.")]
        if id(node) in nested:
            inner.extend((node.lineno, n) for n in dict.fromkeys(names))
        elif not _under_type_checking(tree, node):
            top.update(n for n in names if n in modules and n != module)
    return top, inner


def _under_type_checking(tree: ast.Module, target: ast.AST) -> bool:
    return any(
        isinstance(node, ast.If)
        and "TYPE_CHECKING" in ast.unparse(node.test)
        and any(child is target for child in ast.walk(node))
        for node in tree.body
    )


def graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str]]]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    edges, inner = {}, {}
    for path in paths:
        edges[module_name(path)], found = imports(path, modules)
        if found:
            inner[str(path.relative_to(ROOT))] = found
    return edges, inner


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One path per strongly connected group of modules that import each other."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def mermaid(edges: dict[str, set[str]]) -> str:
    pairs = {
        (package_of(a), package_of(b))
        for a, targets in edges.items()
        for b in targets
        if package_of(a) != package_of(b) and package_of(b) != "transformer"
    }
    short = lambda name: name.removeprefix("transformer.")  # noqa: E731
    lines = ["```mermaid", "graph LR"]
    lines += [f"  {short(a)} --> {short(b)}" for a, b in sorted(pairs)]
    lines.append("```")
    return "\n".join(lines)


def write(doc: Path, block: str) -> None:
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc}: no {BEGIN} ... {END} markers to write between")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail on cycles / inner imports")
    parser.add_argument("--write", type=Path, metavar="DOC", help="refresh DOC's graph block")
    args = parser.parse_args(argv)
    edges, inner = graph()
    if args.check:
        problems = [" -> ".join(c) for c in cycles(edges)]
        problems += [
            f"{path}:{line}: imports {name} inside a function"
            for path, found in inner.items()
            for line, name in found
        ]
        print("\n".join(problems) or "no cycles, every import at the top")
        return 1 if problems else 0
    block = mermaid(edges)
    if args.write:
        write(args.write, block)
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
