"""Monte Carlo on a Dask cluster: a local cluster of two worker processes gives the in-process
result bit for bit, a worker killed mid-run loses and double-counts nothing, and bad cluster
options are located errors."""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ipabs.cli import EXIT_INVALID, EXIT_OK, main
from ipabs.cluster import block_bounds, connect, local_workers
from ipabs.errors import IpabsError

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
DEAL = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with connect(cluster="local:2") as c:
        yield c


def _same(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(a.tranche_outcomes, b.tranche_outcomes)
    np.testing.assert_array_equal(a.pool_outcomes, b.pool_outcomes)
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)


def test_a_local_cluster_gives_the_in_process_result_bit_for_bit(client: Any) -> None:
    from ipabs.montecarlo import simulate

    here = simulate(DEAL, paths=12_000, seed=5, keep=[3])
    there = simulate(DEAL, paths=12_000, seed=5, keep=[3], client=client, batch_size=1_000)
    _same(here, there)
    # importance sampling chooses its shift from pilot runs, which run on the cluster too
    here = simulate(DEAL, paths=6_000, seed=2, importance_sampling=True)
    there = simulate(DEAL, paths=6_000, seed=2, importance_sampling=True, client=client)
    assert there.sampling.method == "importance"
    _same(here, there)


def test_a_streamed_run_on_a_cluster_gives_the_in_process_result_bit_for_bit(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipabs import montecarlo as mc
    from ipabs.analytics import accumulate

    for module in (accumulate, mc):  # several blocks, arriving in any order
        monkeypatch.setattr(module, "BLOCK", 1_024)
    here = mc.simulate(DEAL, paths=9_000, seed=6, outcomes="stream")
    there = mc.simulate(DEAL, paths=9_000, seed=6, outcomes="stream", client=client)
    assert there.streamed
    assert json.dumps(here.to_dict(), sort_keys=True) == json.dumps(there.to_dict(), sort_keys=True)


def test_a_worker_killed_mid_run_loses_nothing_and_counts_nothing_twice(client: Any) -> None:
    from ipabs.analytics.importance import Sampling
    from ipabs.api import _model
    from ipabs.cluster import using
    from ipabs.montecarlo import _run_paths
    from ipabs.risk.model import compile_risk

    model = _model(str(DEAL))
    arrays = compile_risk(model)
    plain = Sampling("plain", np.zeros(arrays.n_factors))
    paths = 120_000
    expected = _run_paths(model, arrays, 9, 0, paths, plain, 2)
    pids = client.run(os.getpid)
    killed: list[int] = []
    progress: list[int] = []

    def on_progress(done: int) -> None:
        progress.append(done)
        if not killed:  # the first block is back: kill a worker with blocks still to run
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    with using(client):
        got = _run_paths(model, arrays, 9, 0, paths, plain, 2, 1_000, on_progress)
    assert killed and len(progress) == paths // 1_000  # every block arrived exactly once
    assert progress[-1] == paths
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def test_the_cli_runs_on_a_local_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["mc", str(DEAL), "--paths", "8000", "--seed", "4", "--json", "--quiet"]
    assert main(args) == EXIT_OK
    here = json.loads(capsys.readouterr().out)
    assert main([*args, "--cluster", "local:2"]) == EXIT_OK
    there = json.loads(capsys.readouterr().out)
    for doc in (here, there):
        doc.pop("elapsed_seconds", None)
    assert here == there


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cluster", "local:0"], "write local:N"),
        (["--cluster", "remote"], "write local:N"),
        (["--cluster", "local:2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
        (["--scheduler", "tcp://127.0.0.1:1"], "cannot reach the Dask scheduler"),
    ],
)
def test_bad_cluster_options_are_errors(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mc", str(DEAL), "--paths", "100", *options]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_blocks_cover_every_path_once() -> None:
    for paths, workers, batch in [(1, 1, None), (99_999, 3, None), (10_000, 2, 333), (10**7, 8, None)]:
        bounds = block_bounds(paths, workers, batch)
        assert bounds[0][0] == 0 and bounds[-1][1] == paths
        assert all(hi > lo for lo, hi in bounds)
        assert all(b[0] == a[1] for a, b in itertools.pairwise(bounds))


def test_local_worker_counts() -> None:
    assert local_workers("local:3") == 3
    with pytest.raises(IpabsError, match="local:N"):
        local_workers("local:x")


def test_the_documented_python_example_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    text = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    monkeypatch.chdir(ROOT)
    exec(compile(code, "docs/cluster.md", "exec"), {})
    assert "expected_loss" in capsys.readouterr().out
