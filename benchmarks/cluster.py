"""Benchmark: Monte Carlo on a local Dask cluster against the in-process run.

Figures (printed; nothing here fails on a slow or busy machine):

1. seconds for N paths of ``scenarios/caohejing_ip_pledge.yaml`` on a local cluster of 1 and
   of 2 worker processes (one thread each), after the cluster has started and warmed up;
2. the overhead of the cluster path: cluster seconds over in-process seconds (2 threads) at
   1e5 and at N paths;
3. the results agree bit for bit (the JSON documents are equal).

N is 1e7 in full mode (a few minutes and about 3 GiB of per-path outcomes) and 1e6 with
``--short``.

Usage::

    python benchmarks/cluster.py             # full sizes
    python benchmarks/cluster.py --short     # small sizes
    python benchmarks/cluster.py --json      # the figures as one JSON document
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEAL = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"


def _timed(paths: int, **kwargs: Any) -> tuple[float, str]:
    from ipabs.montecarlo import simulate

    start = time.perf_counter()
    result = simulate(DEAL, paths=paths, seed=1, threads=2, **kwargs)
    return time.perf_counter() - start, json.dumps(result.to_dict(), sort_keys=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1e6 paths instead of 1e7")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    from ipabs.cluster import connect

    big = 10**6 if args.short else 10**7
    sizes = [10**5, big]
    _timed(2_000)  # compile (or load) the kernels once in this process
    figures: dict[str, Any] = {"paths": big, "in_process": {}, "cluster": {}}
    documents: dict[tuple[str, int], str] = {}
    for n in sizes:
        seconds, documents[("in_process", n)] = _timed(n)
        figures["in_process"][str(n)] = round(seconds, 3)
    for workers in (1, 2):
        with connect(cluster=f"local:{workers}") as client:
            _timed(2_000, client=client)  # workers load the kernels from the on-disk cache
            runs = {}
            for n in sizes if workers == 2 else [big]:
                seconds, documents[(f"cluster{workers}", n)] = _timed(n, client=client)
                runs[str(n)] = round(seconds, 3)
            figures["cluster"][str(workers)] = runs
    figures["overhead"] = {
        str(n): round(figures["cluster"]["2"][str(n)] / figures["in_process"][str(n)], 3) for n in sizes
    }
    figures["speedup_2_over_1_workers"] = round(
        figures["cluster"]["1"][str(big)] / figures["cluster"]["2"][str(big)], 3
    )
    figures["bit_identical"] = all(
        documents[(f"cluster{w}", n)] == documents[("in_process", n)]
        for w, n in [(1, big), (2, big), (2, 10**5)]
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"Monte Carlo on a local Dask cluster, {DEAL.name}")
    print(
        f"1 {big:,} paths: 1 worker {figures['cluster']['1'][str(big)]:.2f} s, 2 workers "
        f"{figures['cluster']['2'][str(big)]:.2f} s (speed-up {figures['speedup_2_over_1_workers']:.2f}x)"
    )
    for n in sizes:
        print(
            f"2 {n:,} paths: in process {figures['in_process'][str(n)]:.2f} s, cluster of 2 "
            f"{figures['cluster']['2'][str(n)]:.2f} s (overhead {figures['overhead'][str(n)]:.2f}x)"
        )
    print(f"3 results bit for bit equal: {figures['bit_identical']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
