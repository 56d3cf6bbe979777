"""Every notebook's code runs top to bottom (without a Jupyter kernel: cells are executed in
one namespace, with a non-interactive matplotlib backend)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(ROOT)
    nb = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ holds at least one runnable notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean_and_listed(path: Path) -> None:
    """Notebooks are kept small and diffable (no outputs), valid nbformat 4.5 (every cell has
    an id), and the README links each one."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    for i, cell in enumerate(nb["cells"]):
        assert cell.get("id"), f"{path.name}: cell {i} has no id"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{path.name}: cell {i} has stored outputs"
            assert cell["execution_count"] is None, f"{path.name}: cell {i} has an execution count"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"(notebooks/{path.name})" in readme, f"README.md does not list notebooks/{path.name}"
