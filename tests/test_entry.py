"""The command's start-up and exit: numba's BLAS probe skipped, streams flushed before the
fast exit, exit statuses kept."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ipabs._entry import SkipBlasProbe, exit_code

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"


def test_probe_refuses_scipy_linalg_only_while_numba_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = SkipBlasProbe()
    loading = types.ModuleType("numba.np.arraymath")  # mid-import: no _HAVE_BLAS yet
    monkeypatch.setitem(sys.modules, "numba.np.arraymath", loading)
    with pytest.raises(ModuleNotFoundError):
        hook.find_spec("scipy.linalg")
    assert hook.find_spec("scipy.special") is None
    loading._HAVE_BLAS = False  # type: ignore[attr-defined]  # the probe is over
    assert hook.find_spec("scipy.linalg") is None


def test_exit_code_of_system_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert exit_code(SystemExit()) == 0
    assert exit_code(SystemExit(2)) == 2
    assert exit_code(SystemExit("message")) == 1
    assert "message" in capsys.readouterr().err


def test_command_skips_scipy_linalg_and_later_imports_work() -> None:
    script = (
        "import sys\n"
        "from ipabs._entry import install_skip_blas_probe\n"
        "install_skip_blas_probe()\n"
        "import ipabs\n"
        f"ipabs.simulate(ipabs.load_deal({str(SCENARIO)!r}), paths=50, seed=1)\n"
        "assert 'scipy.linalg' not in sys.modules, 'numba imported scipy.linalg'\n"
        "import scipy.linalg\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_fast_exit_delivers_the_whole_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ipabs", "mc", str(SCENARIO), "--paths", "300", "--seed", "2", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # complete: the streams were flushed before leaving
    assert doc["paths"] == 300 and [t["name"] for t in doc["tranches"]]


def test_usage_errors_keep_their_status() -> None:
    proc = subprocess.run([sys.executable, "-m", "ipabs", "mc"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "usage" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ipabs", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "usage" in proc.stdout
