"""The ``ipabs mc`` command: text and JSON output, files written, risk files, exit codes."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipabs.cli import main
from ipabs.deal.load import load_risk
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import POOL_OUTCOMES, TRANCHE_OUTCOMES

LOANS = "\n".join(
    f"      - {{obligor: Firm{i}, balance: 1m, rate: 5%, term_months: 12, payment_frequency: quarterly, "
    "pledged_ip: {appraised_value: 2m}}"
    for i in range(10)
)

DEAL = f"""deal:
  name: CLI test deal
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2026-07-01
pools:
  - name: park
    loans:
{LOANS}
tranches:
  - {{name: senior, balance: 8.5m, coupon: 3%}}
  - {{name: junior, balance: 1.5m}}
fees:
  - {{name: trustee, annual_amount: 20k}}
RISK
waterfalls:
  normal:
    - pay_fee: trustee
    - pay_interest: senior
    - pay_principal: senior
    - pay_principal: junior
    - pay_residual: junior
"""

DEAL_RISK = """risk:
  correlation: 0.25
  default_pd: 0.08
  recovery: {model: lognormal, value_mean: 0.3, value_dispersion: 0.5, lag_months: 3}
"""

OTHER_RISK = """risk:
  copula: student_t
  degrees_of_freedom: 5
  correlation: 0.4
  default_pd: 0.2
  recovery: {model: constant, rate: 0.2, lag_months: 0}
"""


@pytest.fixture
def deal_file(tmp_path: Path) -> Path:
    path = tmp_path / "deal.yaml"
    path.write_text(DEAL.replace("RISK", DEAL_RISK), encoding="utf-8")
    return path


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["mc", *args, "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return json.loads(captured.out)


def test_text_output(deal_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mc", str(deal_file), "--paths", "500", "--seed", "3", "--threads", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "CLI test deal | Monte Carlo: 500 paths, seed 3" in out
    lines = out.splitlines()
    assert any(line.startswith("senior ") for line in lines)
    assert any(line.startswith("junior ") for line in lines)
    assert "expected loss ± se" in out and "pool: expected loss" in out
    # the numbers are the API's
    result = simulate(deal_file, paths=500, seed=3, threads=1)
    el, se = result.tranches.loc["junior", ["expected_loss", "expected_loss_se"]]
    junior = next(line for line in lines if line.startswith("junior "))
    match = re.search(r"([-\d.e]+)% ± ([-\d.e]+)%", junior)
    assert match is not None
    shown, shown_se = float(match.group(1)), float(match.group(2))
    # printed as the shared formatter prints an estimate: the se to two significant figures,
    # the estimate to the same decimal place
    assert shown_se == pytest.approx(100 * se, rel=0.05)
    assert abs(shown - 100 * el) <= 0.051 * shown_se
    # not a terminal: no progress bar
    assert captured.err == ""


def test_json_document(deal_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, str(deal_file), "--paths", "800", "--seed", "12")
    assert doc["deal"] == "CLI test deal"
    assert doc["paths"] == 800 and doc["seed"] == 12
    assert [t["name"] for t in doc["tranches"]] == ["senior", "junior"]
    result = simulate(deal_file, paths=800, seed=12, threads=2)
    for t in doc["tranches"]:
        for key in (
            "original_balance",
            "expected_loss",
            "expected_loss_se",
            "probability_of_loss",
            "probability_of_loss_se",
            "expected_wal_years",
            "mean_yield",
        ):
            assert isinstance(t[key], float), key
            assert t[key] == result.tranches.loc[t["name"], key], (t["name"], key)
    assert doc["tranches"][1]["expected_loss"] > 0.0
    pool = doc["pool"]
    for key in (
        "expected_loss",
        "expected_loss_se",
        "loss_q99",
        "expected_default_rate",
        "expected_defaults",
    ):
        assert pool[key] == result.pool.iloc[0][key], key


def test_out_writes_one_row_per_path(
    deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "mc"
    args = ["mc", str(deal_file), "--paths", "300", "--seed", "4", "--importance-sampling", "off"]
    assert main([*args, "--out", str(out_dir)]) == 0
    assert "wrote 4 files to" in capsys.readouterr().out
    frame = pd.read_parquet(out_dir / "paths.parquet")
    assert len(frame) == 300
    assert frame["path"].tolist() == list(range(300))
    result = simulate(deal_file, paths=300, seed=4)
    for i, name in enumerate(POOL_OUTCOMES):
        np.testing.assert_array_equal(frame[f"pool.{name}"], result.pool_outcomes[:, i])
    for k, tranche in enumerate(("senior", "junior")):
        for i, name in enumerate(TRANCHE_OUTCOMES):
            np.testing.assert_array_equal(frame[f"{tranche}.{name}"], result.tranche_outcomes[:, k, i])
    tranches = pd.read_csv(out_dir / "tranches.csv")
    assert tranches["tranche"].tolist() == ["senior", "junior"]
    assert len(pd.read_csv(out_dir / "pool.csv")) == 1
    metrics = pd.read_csv(out_dir / "metrics.csv").set_index(["subject", "metric"])
    assert metrics.loc[("senior", "expected_loss"), "estimate"] == pytest.approx(
        result.tranches.loc["senior", "expected_loss"], rel=1e-12
    )
    assert not list(out_dir.glob(".*.tmp"))


def test_keep_writes_path_tables(deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "mc"
    args = ["mc", str(deal_file), "--paths", "50", "--seed", "9", "--keep", "0,17", "--out", str(out_dir)]
    assert main(args) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out_dir.iterdir() if p.is_dir()) == ["path_0", "path_17"]
    kept = simulate(deal_file, paths=50, seed=9, keep=[17]).kept[17]
    for table in ("periods", "summary", "tranche_flows", "collateral", "triggers"):
        assert (out_dir / "path_17" / f"{table}.csv").is_file()
        assert (out_dir / "path_17" / f"{table}.parquet").is_file()
    periods = pd.read_parquet(out_dir / "path_17" / "periods.parquet")
    pd.testing.assert_frame_equal(periods, kept.periods, check_dtype=False)
    frame = pd.read_parquet(out_dir / "paths.parquet")
    summary = pd.read_csv(out_dir / "path_17" / "summary.csv").set_index("tranche")
    assert frame.loc[17, "junior.loss"] == pytest.approx(summary.loc["junior", "loss"], abs=1e-6)


def test_risk_file_replaces_the_deals_risk(
    deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    risk_file = tmp_path / "stress.yaml"
    risk_file.write_text(OTHER_RISK, encoding="utf-8")
    own = run_json(capsys, str(deal_file), "--paths", "400", "--seed", "2")
    stressed = run_json(capsys, str(deal_file), "--paths", "400", "--seed", "2", "--risk", str(risk_file))
    assert stressed["pool"]["expected_default_rate"] > own["pool"]["expected_default_rate"]
    result = simulate(deal_file, paths=400, seed=2, risk=load_risk(risk_file))
    assert stressed["pool"]["expected_loss"] == result.pool.iloc[0]["expected_loss"]
    assert [t["expected_loss"] for t in stressed["tranches"]] == result.tranches["expected_loss"].tolist()
    # a deal without its own risk section runs with a risk file
    bare = tmp_path / "bare.yaml"
    bare.write_text(DEAL.replace("RISK", ""), encoding="utf-8")
    from_bare = run_json(capsys, str(bare), "--paths", "400", "--seed", "2", "--risk", str(risk_file))
    assert from_bare == stressed


def test_deal_without_risk_section_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text(DEAL.replace("RISK", ""), encoding="utf-8")
    assert main(["mc", str(bare), "--paths", "10"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "risk" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("paths", ["0", "-5", "abc", "1.5"])
def test_bad_paths_exit_2(deal_file: Path, capsys: pytest.CaptureFixture[str], paths: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mc", str(deal_file), "--paths", paths])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--paths" in err and "Traceback" not in err


@pytest.mark.parametrize("seed", ["-1", str(2**63), "x"])
def test_bad_seed_exits_2(deal_file: Path, capsys: pytest.CaptureFixture[str], seed: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["mc", str(deal_file), "--seed", seed])
    assert info.value.code == 2
    assert "--seed" in capsys.readouterr().err


def test_unknown_files_exit_2(deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["mc", str(missing), "--paths", "10"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err
    assert main(["mc", str(deal_file), "--paths", "10", "--risk", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err


def test_bad_risk_file_is_a_located_error(
    deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    risk_file = tmp_path / "bad.yaml"
    risk_file.write_text("risk:\n  correlation: 0.2\n  default_pd: 1.2\n", encoding="utf-8")
    assert main(["mc", str(deal_file), "--paths", "10", "--risk", str(risk_file)]) == 2
    err = capsys.readouterr().err
    assert f"{risk_file}:3:" in err and "risk.default_pd" in err
    risk_file.write_text("correlation: 0.2\n", encoding="utf-8")
    assert main(["mc", str(deal_file), "--paths", "10", "--risk", str(risk_file)]) == 2
    assert "risk" in capsys.readouterr().err


def test_bad_keep_and_out_exit_2(deal_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mc", str(deal_file), "--paths", "10", "--keep", "3,10"]) == 2
    assert "10" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["mc", str(deal_file), "--paths", "10", "--keep", "a,b"])
    assert info.value.code == 2
    capsys.readouterr()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    assert main(["mc", str(deal_file), "--paths", "10", "--out", str(a_file)]) == 2
    assert "not a directory" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(
    deal_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["mc", str(deal_file), "--paths", "200"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "paths (" not in captured.out
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["mc", str(deal_file), "--paths", "200"]) == 0
    bar = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # without the colours
    assert "200/200 paths" in bar and "elapsed" in bar and "left" in bar and bar.endswith("\n")
    assert "\x1b" not in capsys.readouterr().out
    # --json stays machine-readable: no bar even on a terminal
    terminal.seek(0)
    terminal.truncate()
    assert main(["mc", str(deal_file), "--paths", "200", "--json"]) == 0
    assert terminal.getvalue() == ""
    json.loads(capsys.readouterr().out)
