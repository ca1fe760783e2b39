"""The module graph of `transformer.tokenizers`: no cycles, imports only at module level."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import transformer.tokenizers

PACKAGE = "transformer.tokenizers"
ROOT = Path(transformer.tokenizers.__file__).parent


def parsed() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(ROOT.glob("*.py"))}


def package_imports(tree: ast.Module) -> set[str]:
    """The sibling modules one module imports (`from transformer.tokenizers[.x] import y`)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
            out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names if a.name.startswith(PACKAGE + "."))
    return out


def test_every_import_is_at_module_level():
    for name, tree in parsed().items():
        for scope in ast.walk(tree):
            if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = [n for n in ast.walk(scope) if isinstance(n, ast.Import | ast.ImportFrom)]
                assert not inner, f"{name}.py imports inside {scope.name} (line {inner[0].lineno})"


def test_module_graph_has_no_cycles():
    modules = parsed()
    graph = {
        name: package_imports(tree) & set(modules) - {name}
        for name, tree in modules.items()
        if name != "__init__"
    }
    done: set[str] = set()
    for start in graph:  # depth-first search; a module met again on the current path is a cycle
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                done.add(node)
            elif child in path:
                raise AssertionError("import cycle: " + " -> ".join([*path, child]))
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    assert "files" in graph and not graph["files"]  # the bottom: imports nothing of the package


def test_no_module_shadows_the_standard_library():
    assert not {p.stem for p in ROOT.glob("*.py")} & set(sys.stdlib_module_names)
