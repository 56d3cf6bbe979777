"""Benchmark: a streamed Monte Carlo in bounded memory, and the refusal of one that cannot fit.

Figures (printed; nothing here fails on a slow or busy machine):

1. N paths of the 1,000-loan, 60-month benchmark deal of ``benchmarks/montecarlo.py`` with
   ``outcomes="stream"`` on 2 threads: seconds, paths per second, the process's peak resident
   memory before and after the run, the bound stated in docs/montecarlo.md
   (``stream_bytes`` plus 200 MB), and the temporary disk the quantile columns took;
2. for comparison, the memory the same run would need with its outcomes kept
   (``outcome_bytes``), and whether this machine could hold it;
3. the refusal: ``ipabs mc --outcomes keep`` for that many paths, when they cannot fit, ends
   with exit code 2 and a message before it starts (and ``--outcomes auto`` streams instead).

N is 1e8 in full mode (about a quarter of an hour on 2 cores) and 1e6 with ``--short``.

Usage::

    python benchmarks/stream.py             # 1e8 paths
    python benchmarks/stream.py --short     # 1e6 paths
    python benchmarks/stream.py --paths N   # any number
    python benchmarks/stream.py --json      # the figures as one JSON document
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def measure(paths: int, progress: bool) -> dict[str, Any]:
    import montecarlo as mc_bench

    from ipabs.api import _model
    from ipabs.deal.load import parse_deal
    from ipabs.io import available_memory
    from ipabs.montecarlo import outcome_bytes, simulate, stream_bytes

    model = _model(parse_deal(mc_bench.deal_yaml(mc_bench.make_pool(1_000)), "pool.yaml"))
    simulate(model, paths=2_000, seed=1, threads=2, outcomes="stream")  # compile, warm the caches
    before = _peak_mb()
    with tempfile.TemporaryDirectory() as tmp:
        tempfile.tempdir = tmp  # the quantile columns go here, and are gone with it
        try:
            start = time.perf_counter()
            result = simulate(model, paths=paths, seed=1, threads=2, outcomes="stream", progress=progress)
        finally:
            tempfile.tempdir = None
        seconds = time.perf_counter() - start
    after = _peak_mb()
    available = available_memory()
    columns = 8 * (3 + 2 * len(result.tranche_names)) * paths
    return {
        "paths": paths,
        "seconds": round(seconds, 2),
        "paths_per_second": round(paths / seconds),
        "peak_rss_mb_before": round(before, 1),
        "peak_rss_mb_after": round(after, 1),
        "stated_bound_mb": round((stream_bytes(model, 2) + 200e6) / 1e6, 1),
        "temporary_columns_gb": round(columns / 1e9, 2),
        "kept_outcomes_would_need_gb": round(outcome_bytes(model, paths) / 1e9, 2),
        "available_memory_gb": round(available / 1e9, 2) if available else None,
        "senior_expected_loss": result.tranche_summary[0]["expected_loss"],
        "senior_expected_loss_se": result.tranche_summary[0]["expected_loss_se"],
        "pool_loss_q99.9": result.pool_summary["loss_q99.9"],
    }


def refusal(paths: int) -> dict[str, Any]:
    """``ipabs mc --outcomes keep`` for ``paths`` paths of a shipped deal: its exit code and
    message (it must stop before simulating when the outcomes cannot fit)."""
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ipabs",
            "mc",
            str(deal),
            "--paths",
            str(paths),
            "--outcomes",
            "keep",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "paths": paths,
        "exit_code": run.returncode,
        "seconds": round(time.perf_counter() - start, 2),
        "message": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1e6 paths instead of 1e8")
    parser.add_argument("--paths", type=int, help="number of paths")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    paths = args.paths or (10**6 if args.short else 10**8)
    figures = {"stream": measure(paths, progress=not args.json), "refusal": refusal(10**11)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    s, r = figures["stream"], figures["refusal"]
    print(
        f"streamed: {s['paths']:,} paths of the 1,000-loan deal in {s['seconds']:,} s"
        f" ({s['paths_per_second']:,}/s, 2 threads)"
    )
    print(
        f"  peak resident memory {s['peak_rss_mb_after']:,} MB"
        f" (before the run {s['peak_rss_mb_before']:,} MB);"
        f" stated bound over the process: {s['stated_bound_mb']:,} MB"
    )
    print(
        f"  quantile columns on disk {s['temporary_columns_gb']} GB; kept outcomes would need"
        f" {s['kept_outcomes_would_need_gb']} GB of memory ({s['available_memory_gb']} GB available)"
    )
    print(
        f"  senior expected loss {s['senior_expected_loss']:.6%} ± {s['senior_expected_loss_se']:.6%};"
        f" pool loss 99.9% quantile {s['pool_loss_q99.9']:.4%}"
    )
    print(f"refusal: mc --outcomes keep --paths {r['paths']:,}: exit {r['exit_code']} in {r['seconds']} s")
    print(f"  {r['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
