"""Golden files: the summary of every shipped scenario is pinned to the cent.

A changed number fails here until someone looks at it and, if it is right, rewrites the files
with ``python3 -m pytest tests/test_golden.py --update-golden`` and commits them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import ipabs
from ipabs.api import run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def _snapshot(path: Path) -> dict:
    deal = ipabs.load_deal(path)
    out = {}
    for name in deal.spec.scenarios:
        doc = run(deal, name).to_dict()
        for tranche in doc["tranches"]:
            for key, value in tranche.items():
                if isinstance(value, float):
                    tranche[key] = round(value, 2) if abs(value) >= 1 else round(value, 8)
        out[name] = {"tranches": doc["tranches"], "triggers": doc["triggers"]}
    return out


def _close(a: object, b: object, where: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=0.011), f"{where}: {a} != golden {b}"
    else:
        assert a == b, f"{where}: {a!r} != golden {b!r}"


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_matches_golden(path: Path, update_golden: bool) -> None:
    target = GOLDEN / f"{path.stem}.json"
    current = _snapshot(path)
    if update_golden:
        GOLDEN.mkdir(exist_ok=True)
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(target)
        return
    assert target.exists(), f"no golden file {target.name}: run pytest --update-golden and commit it"
    golden = json.loads(target.read_text(encoding="utf-8"))
    _close(current, golden, path.stem)
