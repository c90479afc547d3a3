"""The package's layers: a module imports only from its own layer or the layers below it, and no
two modules import each other, directly or round a cycle. Imports inside functions count."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hybrid"

#: Lowest first. A module may import from its own layer and from every layer before it.
LAYERS = ["hybrid.core", "hybrid.data", "hybrid.content", "hybrid.evaluation", "hybrid.models",
          "hybrid.recommend", "hybrid.experiments", "hybrid.pipeline", "hybrid.serving", "hybrid.cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module of the project that ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            # ``from hybrid.models import baselines`` imports the module hybrid.models.baselines
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if (PACKAGE.parent / (f"{base}.{alias.name}".replace(".", "/") + ".py")).exists()
                         or (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/") / "__init__.py").exists())
    return {m for m in found if m.split(".")[0] in ("hybrid", "pipelines")}


def layer_of(module: str) -> int | None:
    for number, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return number
    return None


MODULES = {module_name(p): imported_modules(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_of_the_package_belongs_to_a_layer():
    # the root package only re-exports lazily (``hybrid.__getattr__``); ``__main__`` runs the CLI
    loose = [m for m in MODULES if layer_of(m) is None and m not in ("hybrid", "hybrid.__main__")]
    assert not loose, f"modules outside every layer: {loose}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer_of(m) is not None))
def test_a_module_imports_nothing_from_a_higher_layer(module):
    upward = sorted(target for target in MODULES[module]
                    if target.startswith("pipelines") and layer_of(module) != layer_of("hybrid.cli")
                    or (layer_of(target) or 0) > layer_of(module))
    assert not upward, f"{module} ({LAYERS[layer_of(module)]}) imports from higher layers: {upward}"


def test_no_import_cycles():
    graph = {m: {t for t in targets if t in MODULES and t != m and not m.startswith(t + ".")}
             for m, targets in MODULES.items() if m not in ("hybrid", "hybrid.__main__")}
    graph = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    done, on_path, cycles = set(), [], []

    def visit(module):
        if module in on_path:
            cycles.append(on_path[on_path.index(module):] + [module])
            return
        if module in done:
            return
        on_path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_an_upward_import():
    # the test itself: an import from a higher layer is found, inside a function too
    assert layer_of("hybrid.pipeline.stages") > layer_of("hybrid.recommend.two_stage")
    assert "hybrid.recommend.two_stage" in MODULES["hybrid.pipeline.stages"]
