"""Imports run downwards: deal -> collateral -> engine -> risk -> analytics -> commands.

Every ``from ipabs... import`` in the package (at module level, inside functions and under
``TYPE_CHECKING``) must point at the same layer or one below. The only exception: a result's
``plot`` accessor reaches up to :mod:`ipabs.report.charts`, the way ``DataFrame.plot`` does."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ipabs"

# the rank of each module, by the longest matching prefix
LAYERS: dict[str, float] = {
    # infrastructure every layer may use
    "ipabs._jit": 0,
    "ipabs._version": 0,
    "ipabs.errors": 0,
    "ipabs.dates": 0,
    "ipabs.calendars": 0,
    "ipabs.format": 0,
    "ipabs.labels": 0,
    "ipabs.console": 0,
    "ipabs.io": 0,
    "ipabs.cluster": 0,
    "ipabs.numerics": 0,
    "ipabs.data": 0,
    # the domain, bottom up
    "ipabs.deal": 1,
    "ipabs.collateral": 2,
    "ipabs.engine": 3,
    "ipabs.risk": 4,
    "ipabs.api": 4.5,  # deterministic runs and their results
    "ipabs.results": 4.5,
    "ipabs.analytics": 5,  # estimators, tables, importance sampling, stresses
    "ipabs.montecarlo": 5.5,  # the Monte Carlo driver uses them
    "ipabs.analytics.implied": 6,  # ... and these use the driver
    "ipabs.analytics.pricing": 6,
    "ipabs.analytics.sizing": 6,
    "ipabs.analytics.monitor": 6,
    "ipabs.analytics.sweep": 6,
    "ipabs.report": 7,
    "ipabs.regression": 7,
    "ipabs.commands": 8,
    "ipabs.cli": 9,
    "ipabs.docgen": 9,
    "ipabs._entry": 9,
    "ipabs": 10,  # the package's own namespace and __main__
}

PLOT_ACCESSORS = {"ipabs.report.charts"}


def rank(module: str) -> float:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"{module} has no layer: add it to LAYERS")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST) -> list[tuple[str, str | None, int]]:
    """(imported module, where, line) of every ipabs import; where is the enclosing function,
    "TYPE_CHECKING" inside such a block, or None at module level."""
    found: list[tuple[str, str | None, int]] = []

    def walk(node: ast.AST, where: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(child, child.name)
                continue
            test = child.test if isinstance(child, ast.If) else None
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                walk(child, "TYPE_CHECKING")
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.module.startswith("ipabs"):
                found.append((child.module, where, child.lineno))
            elif isinstance(child, ast.Import):
                names = [a.name for a in child.names if a.name.startswith("ipabs")]
                found.extend((name, where, child.lineno) for name in names)
            walk(child, where)

    walk(tree, None)
    return found


def test_imports_run_downwards() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for target, function, line in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if rank(target) <= rank(module):
                continue
            if target in PLOT_ACCESSORS and function in ("plot", "TYPE_CHECKING"):  # see the docstring
                continue
            upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}")
    assert not upward, "imports that run upwards:\n" + "\n".join(upward)


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        rank(_module_name(path))


def test_the_check_finds_an_upward_import() -> None:
    tree = ast.parse("def f():\n    from ipabs.montecarlo import simulate\n")
    (target, function, _), *_ = _imports(tree)
    assert function == "f" and rank(target) > rank("ipabs.engine.layout")
