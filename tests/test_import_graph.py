"""The package's import graph points one way: no circles, and the layers that must stand alone do.

Every ``import`` / ``from ... import`` statement of every module under ``idfsplade/`` is read with
``ast`` (module level *and* inside functions, classes and ``if`` blocks, relative imports resolved), so a
lazy import inside a function counts as much as one at the top, and so does a string that is exactly a
module's dotted name (``idfsplade.lazy.lazy_attributes`` maps, the index backend registry): the import it
defers is still an arrow. Nothing is imported to build the graph.

An edge ``a -> b`` means module ``a`` names module ``b`` in an import: ``from x.y import z`` is an edge to
``x.y.z`` when that is a module, else to ``x.y``. The implicit "importing ``x.y.z`` first runs
``x/__init__.py`` and ``x/y/__init__.py``" is *not* an edge: that is how a package imports its own
submodules (``idfsplade/search/__init__.py`` -> ``idfsplade.search.retriever``) without a circle. A circle
is then any strongly connected component of two or more modules, e.g. ``idfsplade.cli`` ->
``idfsplade.cli.core`` -> ``idfsplade.console`` -> ``idfsplade.cli`` (an explicit import of the package
back from below it counts).

The layer rules (each over the *transitive* closure of explicit edges, so a detour does not hide an
arrow) are in ``FORBIDDEN``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "idfsplade"
_MODULE_PATH = re.compile(r"idfsplade(\.[a-z_][a-z0-9_]*)+")

# (modules the rule applies to, what they must not reach, modules exempt, why)
FORBIDDEN = [
    (("idfsplade.serve",), ("idfsplade.cli", "idfsplade.console"), (),
     "the HTTP service composes the library, never the command line"),
    (("idfsplade.query",), ("idfsplade.model", "torch", "transformers", "sentence_transformers"), (),
     "the query side stands alone: tokenizer.json + idf.json, no model code, no torch"),
    (("idfsplade.train",), ("idfsplade.pipeline",), ("idfsplade.train.experiment", "idfsplade.train.adapt"),
     "training does not depend on the evaluation pipeline (only the jobs composing both may)"),
    (("idfsplade.index",), ("idfsplade.model", "torch"), (), "the index knows nothing of models"),
    (("idfsplade.data",), ("idfsplade.model", "idfsplade.train", "torch"), (), "data knows nothing of models"),
    (("idfsplade.idf",), ("idfsplade.model", "idfsplade.train", "idfsplade.pipeline", "torch"), (),
     "IDF is a corpus statistic"),
    (("idfsplade.model",), ("idfsplade.train", "idfsplade.pipeline", "idfsplade.search", "idfsplade.cli",
                            "idfsplade.serve"), (), "the model knows nothing of training or search"),
    (("idfsplade.vectors", "idfsplade.evaluate"), ("idfsplade.model", "idfsplade.train", "torch"), (),
     "vectors and metrics are data"),
    (("idfsplade.search",), ("idfsplade.pipeline", "idfsplade.train", "idfsplade.cli", "idfsplade.console",
                             "idfsplade.serve"), (), "search composes the query side with an index, nothing above"),
]


def module_files(root: Path) -> dict[str, tuple[Path, bool]]:
    """``{dotted module name: (file, is_package)}`` for every ``.py`` under ``root/idfsplade``."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name ``module`` imports: ``x.y`` for ``import x.y``; ``x.y.z`` for ``from x.y import z``
    (resolved to a module later: ``x.y.z`` when it is one, else ``x.y``)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                source = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.update(f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.fullmatch(node.value):
            names.add(node.value)  # a module named in a string: idfsplade.lazy's maps, a registry of modules
    return names


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(edges among idfsplade modules, top-level external packages each module imports)``."""
    modules = module_files(root)
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        edges[module], external[module] = set(), set()
        for name in _imported(ast.parse(path.read_text(encoding="utf-8"), str(path)), module, is_package):
            if name.split(".")[0] != PACKAGE:
                external[module].add(name.split(".")[0])
                continue
            while name and name not in modules:  # x.y.z is a name defined in module x.y
                name = name.rpartition(".")[0]
            if name and name != module:
                edges[module].add(name)
    return edges, external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with two or more modules (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def reachable(edges: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module reachable from ``start``, each with the module it was first reached from."""
    seen = {start: ""}
    todo = [start]
    while todo:
        node = todo.pop()
        for child in sorted(edges.get(node, ())):
            if child not in seen:
                seen[child] = node
                todo.append(child)
    return seen


def path_to(parents: dict[str, str], target: str) -> str:
    chain = [target]
    while parents.get(chain[-1]):
        chain.append(parents[chain[-1]])
    return " -> ".join(reversed(chain))


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(edges: dict[str, set[str]], external: dict[str, set[str]], rules=FORBIDDEN) -> list[str]:
    """One line per forbidden arrow: the import chain from the module to what it must not reach."""
    found = []
    for sources, banned, exempt, why in rules:
        for module in sorted(edges):
            if not _within(module, sources) or _within(module, exempt):
                continue
            parents = reachable(edges, module)
            for target in sorted(parents):
                if target != module and _within(target, banned):
                    found.append(f"{path_to(parents, target)}  ({why})")
            for via in sorted(parents):
                for package in sorted(external.get(via, ())):
                    if package in banned:
                        found.append(f"{path_to(parents, via)} -> {package}  ({why})")
    return found


def test_no_import_cycles():
    edges, _ = import_graph()
    assert len(edges) > 50  # the walk found the package
    assert cycles(edges) == []


def test_layers_point_one_way():
    edges, external = import_graph()
    assert violations(edges, external) == []


def test_function_level_and_relative_imports_are_edges(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from idfsplade.sub import leaf\n")  # a package importing its submodule
    (pkg / "sub" / "__init__.py").write_text(  # a lazy map's module path (and a docstring that only mentions one)
        '"""Not idfsplade.top."""\n__getattr__ = lazy(__name__, {"f": "idfsplade.top"})\n')
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from .. import top\n    import torch\n")
    (pkg / "top.py").write_text("from idfsplade.sub.leaf import f\n")
    edges, external = import_graph(tmp_path)
    assert edges["idfsplade.sub.leaf"] == {"idfsplade.top"}  # relative, inside a function
    assert edges["idfsplade"] == {"idfsplade.sub.leaf"}
    assert edges["idfsplade.sub"] == {"idfsplade.top"}  # a lazy map's module path is an edge (a docstring is not)
    assert external["idfsplade.sub.leaf"] == {"torch"}
    assert cycles(edges) == [["idfsplade.sub.leaf", "idfsplade.top"]]


def test_a_circle_through_the_package_itself_is_reported(tmp_path):
    """The circle of issue 19: cli/__init__ -> cli.core -> console -> cli (package) -> ..."""
    pkg = tmp_path / PACKAGE
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("from idfsplade.cli import core\n")
    (pkg / "cli" / "core.py").write_text("def search():\n    from idfsplade.console import print_hits\n")
    (pkg / "console.py").write_text("def main():\n    from idfsplade.cli import main\n")
    (pkg / "serve.py").write_text("from idfsplade.console import check\n")
    edges, external = import_graph(tmp_path)
    assert cycles(edges) == [["idfsplade.cli", "idfsplade.cli.core", "idfsplade.console"]]
    why = "(the HTTP service composes the library, never the command line)"
    assert violations(edges, external) == [
        f"idfsplade.serve -> idfsplade.console -> idfsplade.cli  {why}",
        f"idfsplade.serve -> idfsplade.console -> idfsplade.cli -> idfsplade.cli.core  {why}",
        f"idfsplade.serve -> idfsplade.console  {why}",
    ]


@pytest.mark.parametrize("source, line, banned", [
    ("query/encoder.py", "def f():\n    from idfsplade.model.inference_free import query_weights\n", "idfsplade.model"),
    ("query/encoder.py", "import torch\n", "torch"),
    ("train/trainer.py", "from idfsplade.pipeline import corpus_idf\n", "idfsplade.pipeline"),
    ("index/exact.py", "from ..model import registry\n", "idfsplade.model"),
])
def test_an_upward_arrow_is_reported(tmp_path, source, line, banned):
    for module in module_files(ROOT).values():
        target = tmp_path / module[0].relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(module[0].read_text(encoding="utf-8"), encoding="utf-8")
    with (tmp_path / PACKAGE / source).open("a", encoding="utf-8") as f:
        f.write("\n" + line)
    edges, external = import_graph(tmp_path)
    found = violations(edges, external)
    assert found and all(banned in v for v in found)
