"""Output is written whole or not at all: an interrupted or terminated command leaves neither a
partial set of tables nor temporaries; an --out that cannot be written, or a number of paths
that cannot fit in memory, is refused (exit 2) before any simulation runs."""

from __future__ import annotations

import io as io_module
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ipabs import cli, io
from ipabs.commands import _common as common
from ipabs.errors import IpabsError

ROOT = Path(__file__).resolve().parents[1]
RISK = "risk: {correlation: 20%, default_pd: 3%}\n"

# A signal sent to the command by itself right after its second Parquet file: the moment a
# user's Ctrl-C or a scheduler's SIGTERM would land in the middle of writing the tables.
INTERRUPT_WHILE_WRITING = """
import os, signal, sys
import pandas as pd

sig = getattr(signal, sys.argv[1])
real = pd.DataFrame.to_parquet
written = []

def to_parquet(self, *args, **kwargs):
    real(self, *args, **kwargs)
    written.append(args)
    if len(written) == 2:
        os.kill(os.getpid(), sig)

pd.DataFrame.to_parquet = to_parquet
from ipabs.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def deal(tmp_path: Path, minimal_text: str) -> Path:
    path = tmp_path / "deal.yaml"
    path.write_text(minimal_text + RISK, encoding="utf-8")
    return path


def _interrupted(sig: str, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_DISABLE_JIT": "1"}
    return subprocess.run(
        [sys.executable, "-c", INTERRUPT_WHILE_WRITING, sig, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
        check=False,
    )


COMMANDS = {
    "run": ["run", "deal.yaml"],
    "mc": ["mc", "deal.yaml", "--paths", "40", "--keep", "3", "--importance-sampling", "off"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 128 + signal.SIGTERM)])
def test_signal_while_writing_leaves_nothing(deal: Path, command: str, sig: str, code: int) -> None:
    work = deal.parent
    (work / "kept").mkdir()
    (work / "kept" / "notes.txt").write_text("from an earlier run\n", encoding="utf-8")
    for out in ("fresh/out", "kept"):
        done = _interrupted(sig, [*COMMANDS[command], "--out", out], work)
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        assert not (work / "fresh" / "out").exists()
        assert sorted(p.name for p in (work / "kept").iterdir()) == ["notes.txt"]
        leftovers = [p for p in work.rglob("*") if p.name.startswith(".")]
        assert leftovers == [], leftovers


def test_the_whole_set_is_written_into_an_existing_folder(tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "out"
    (out / "path_1").mkdir(parents=True)
    (out / "path_1" / "old.csv").write_text("x\n", encoding="utf-8")
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    frame = pd.DataFrame({"a": [1, 2]})
    written = io.write_tables(out, {"t.csv": frame, "path_1/p.parquet": frame})
    assert written == [out / "t.csv", out / "path_1" / "p.parquet"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "notes.txt",
        "path_1",
        "path_1/p.parquet",
        "t.csv",
    ]
    assert pd.read_parquet(out / "path_1" / "p.parquet").equals(frame)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_write_removes_its_temporaries(tmp_path: Path) -> None:
    class Broken:
        def to_csv(self, *args: Any, **kwargs: Any) -> None:
            raise OSError(28, "No space left on device")

    import pandas as pd

    with pytest.raises(OSError):
        io.write_tables(tmp_path / "out", {"a.csv": pd.DataFrame({"a": [1]}), "b.csv": Broken()})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- checked up front


def _no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the simulation ran before --out was checked")

    monkeypatch.setattr("ipabs.montecarlo.simulate", refuse)
    monkeypatch.setattr("ipabs.api.run", refuse)
    monkeypatch.setattr("ipabs.analytics.sweep.sweep", refuse)


@pytest.mark.parametrize("command", ["run", "mc", "sweep"])
def test_unwritable_out_is_refused_before_simulating(
    deal: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    _no_simulation(monkeypatch)
    blocker = deal.parent / "a-file"
    blocker.write_text("", encoding="utf-8")
    argv = {
        "run": ["run", str(deal)],
        "mc": ["mc", str(deal), "--paths", "10"],
        "sweep": ["sweep", str(deal), "--set", "risk.correlation=0.1,0.2", "--paths", "10"],
    }[command]
    target = blocker / "sub" / ("rows.csv" if command == "sweep" else "out")
    assert cli.main([*argv, "--out", str(target)]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert f"--out {target}:" in err, err
    assert "not a directory" in err or "does not exist" in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not bind the superuser")
def test_read_only_out_is_refused_before_simulating(
    deal: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_simulation(monkeypatch)
    locked = deal.parent / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli.main(["mc", str(deal), "--paths", "10", "--out", str(locked / "out")]) == 2
    finally:
        locked.chmod(0o700)
    assert "cannot write in" in capsys.readouterr().err


def test_paths_that_cannot_fit_in_memory_are_refused(
    deal: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_simulation(monkeypatch)
    assert cli.main(["mc", str(deal), "--paths", "1000000000000", "--outcomes", "keep"]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "--paths 1,000,000,000,000 needs about" in err and "give fewer paths" in err
    assert "--outcomes stream" in err
    # by default mc streams what memory cannot keep: then the columns on disk must fit
    assert cli.main(["mc", str(deal), "--paths", "1000000000000"]) == cli.EXIT_INVALID
    err = capsys.readouterr().err
    assert "--paths 1,000,000,000,000 streams" in err and "GB free" in err


def test_the_python_api_refuses_paths_that_cannot_fit_before_it_starts(deal: Path) -> None:
    from ipabs.montecarlo import simulate

    with pytest.raises(IpabsError, match=r"paths=1,000,000,000,000 needs about .*\(give fewer paths"):
        simulate(deal, paths=10**12, seed=1)


def test_the_memory_estimate_covers_what_a_run_allocates(deal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured, not re-derived: the arrays a real run keeps per path never exceed the
    estimate, so memory that is enough by the estimate is enough for the arrays."""
    from ipabs.montecarlo import simulate

    paths = 64
    result = simulate(deal, paths=paths, seed=1)
    kept = (
        result.tranche_outcomes.nbytes
        + result.pool_outcomes.nbytes
        + result.path_frame().memory_usage().sum()
    )
    monkeypatch.setattr(io, "available_memory", lambda: int(kept) - 1)
    with pytest.raises(IpabsError, match="give fewer paths"):
        cli.check_paths_fit(deal, paths, writing=True)
    monkeypatch.setattr(io, "available_memory", lambda: 1 << 40)
    cli.check_paths_fit(deal, paths, writing=True)


# --------------------------------------------------------------------------- first compilation


class _Terminal(io_module.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def cold_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kernel looks uncompiled, and compiling is on."""
    monkeypatch.setattr(common, "_compiled_before", lambda kernel: False)
    monkeypatch.setattr("numba.config.DISABLE_JIT", False)


def test_a_cold_cache_is_announced_on_a_terminal(cold_cache: None) -> None:
    terminal = _Terminal()
    assert common.compile_notice(True, stream=terminal)
    assert "compiling the simulation kernels" in terminal.getvalue()


def test_no_notice_on_a_pipe_with_json_or_a_warm_cache(
    cold_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = io_module.StringIO()
    assert not common.compile_notice(True, stream=pipe) and pipe.getvalue() == ""
    terminal = _Terminal()
    assert not common.compile_notice(False, quiet=True, stream=terminal)
    monkeypatch.setattr(common, "_compiled_before", lambda kernel: True)
    assert not common.compile_notice(False, stream=terminal) and terminal.getvalue() == ""


def test_the_cache_probe_reads_numbas_index(tmp_path: Path) -> None:
    """The probe looks at the index file numba would load the kernel from."""
    from ipabs.engine.waterfall_numba_fns import run_waterfall

    index = Path(run_waterfall._cache._cache_file._index_path)
    assert index.name.startswith("waterfall_numba_fns.run_waterfall") and index.suffix == ".nbi"
    assert common._compiled_before(run_waterfall) == index.exists()
    assert common._compiled_before(lambda: None)  # the pure-Python twin compiles nothing


def test_the_notice_stays_off_piped_json(deal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(deal), "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_a_signal_during_the_final_renames_waits_for_the_whole_set(tmp_path: Path) -> None:
    """Ctrl-C that lands while the files are moved into place is handled once all are."""
    import pandas as pd

    out = tmp_path / "out"
    out.mkdir()
    real = io._move_into_place

    def interrupted_move(tmp: Path, target: Path) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        real(tmp, target)

    frame = pd.DataFrame({"a": [1]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(io, "_move_into_place", interrupted_move)
        with pytest.raises(KeyboardInterrupt):
            io.write_tables(out, {"a.csv": frame, "b.csv": frame})
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
