"""The house rules of the package (docs/guide.md, 'Layout'): no import circle, and the layers import downwards only:
the method and what it stands on (the package root, models/) <- the comparisons (studies/) <- the reproduction
machinery (reproduction/) <- the command line (__main__.py). Imports inside functions count too."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "paper_repro"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], root: Path = PACKAGE) -> set[str]:
    """The package's modules that `path` imports (anywhere in the file). `from .x import y` names x.y when y is
    a module, else x."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules and m != me}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p, root) for p in files}
    return {module_name(p, root): imports(p, modules, root) for p in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[1:2] == ["__main__"]:
        return 3
    return {"reproduction": 2, "studies": 1}.get(parts[1] if len(parts) > 1 else "", 0)


def test_the_package_has_no_import_circle():
    assert circles(import_graph()) == []


def test_layers_import_downwards_only():
    upward = [f"{a} -> {b}" for a, targets in import_graph().items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def test_the_checks_can_fail(tmp_path):
    pkg = tmp_path / "paper_repro"
    (pkg / "studies").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "studies" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")  # inside a function: still an import
    (pkg / "b.py").write_text("from . import a\nfrom .studies import peer\n")
    (pkg / "studies" / "peer.py").write_text("from ..a import f\n")
    graph = import_graph(pkg)
    assert circles(graph) == [["paper_repro.a", "paper_repro.b", "paper_repro.studies.peer"]]
    assert [b for a, t in graph.items() for b in t if layer(b) > layer(a)] == ["paper_repro.studies.peer"]


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_every_module_imports(module):
    __import__(module)
