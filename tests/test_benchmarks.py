"""The Monte Carlo benchmark runs and reports every figure.

Only that the figures are there and make sense: the speed targets are never checked here, so
a slow or busy machine does not fail the suite.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "montecarlo.py"

POSITIVE = {
    "default_sampling": ("draw_defaults_per_s", "uniforms_per_s", "ratio"),
    "pool_deal": ("paths", "seconds", "paths_per_s", "seconds_per_100k_paths"),
    "numpy_reference": ("paths", "numpy_seconds", "ipabs_seconds", "speedup"),
    "cli": ("paths", "seconds"),
    "memory": ("paths", "peak_rss_gib", "seconds"),
}


@pytest.mark.slow
def test_montecarlo_benchmark_short_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--short", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,  # a cold numba cache compiles the kernels first
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "short"
    figures = doc["figures"]
    assert set(POSITIVE) <= set(figures)
    for name, keys in POSITIVE.items():
        for key in keys:
            value = figures[name][key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, key, value)
        target = figures[name]["target"]
        assert target["figure"] in figures[name] and target["value"] > 0
    agreement = figures["numpy_reference"]["expected_loss"]
    assert {"A", "B", "C", "pool"} <= set(agreement)
    for row in agreement.values():
        assert all(math.isfinite(row[k]) for k in ("ipabs", "ipabs_se", "numpy", "numpy_se", "z"))
        assert row["ipabs_se"] >= 0 and row["numpy_se"] >= 0


@pytest.mark.slow
def test_importance_benchmark_short_json() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "importance.py"), "--short", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "short"
    figures = doc["figures"]
    for name, keys in {
        "importance_sampling": (
            "paths",
            "seconds",
            "expected_loss",
            "expected_loss_se",
            "variance_reduction",
        ),
        "plain_paths_ratio": ("paths", "seconds", "paths_needed", "ratio"),
    }.items():
        for key in keys:
            value = figures[name][key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (name, key, value)
    # both estimate the same expected loss (importance sampling is unbiased)
    assert abs(figures["plain_paths_ratio"]["z"]) < 5


@pytest.mark.slow
def test_stream_benchmark_reports_its_figures() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "stream.py"), "--paths", "30000", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads(proc.stdout)
    stream = doc["stream"]
    assert stream["paths"] == 30_000
    for key in (
        "seconds",
        "paths_per_second",
        "peak_rss_mb_after",
        "stated_bound_mb",
        "kept_outcomes_would_need_gb",
    ):
        assert stream[key] > 0, key
    assert 0.0 <= stream["senior_expected_loss"] < 1.0
    refusal = doc["refusal"]
    assert refusal["exit_code"] == 2 and "needs about" in refusal["message"]
