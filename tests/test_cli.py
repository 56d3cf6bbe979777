"""The command line: output, JSON shape, files written, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ipabs.cli import EXIT_INVALID, EXIT_OK, main

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "tests" / "deals" / "minimal.yaml"


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(MINIMAL)]) == EXIT_OK
    assert f"{MINIMAL}: ok" in capsys.readouterr().out


def test_validate_reports_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MINIMAL.read_text(encoding="utf-8").replace("balance:", "balanse:", 1), encoding="utf-8")
    code = main(["validate", str(MINIMAL), str(bad), str(tmp_path / "missing.yaml")])
    out = capsys.readouterr()
    assert code == EXIT_INVALID
    assert f"{MINIMAL}: ok" in out.out
    assert "did you mean 'balance'?" in out.err
    assert f"{bad}:" in out.err and "missing.yaml" in out.err
    assert "Traceback" not in out.err


def test_run_prints_tranche_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MINIMAL)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "WAL (y)" in out and "final payment" in out and "triggers fired" in out
    assert "senior" in out


def test_run_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MINIMAL), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert isinstance(doc["tranches"], list) and doc["tranches"]
    for tranche in doc["tranches"]:
        assert {"name", "wal_years", "yield", "interest_paid", "principal_paid", "loss"} <= set(tranche)
        assert {"final_payment_date"} <= set(tranche)
    assert "scenario" in doc and "triggers" in doc


def test_run_out_writes_csv_and_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    assert main(["run", str(MINIMAL), "--out", str(out_dir)]) == EXIT_OK
    for name in ("summary", "periods", "tranche_flows", "collateral", "triggers"):
        csv = pd.read_csv(out_dir / f"{name}.csv")
        parquet = pd.read_parquet(out_dir / f"{name}.parquet")
        assert list(csv.columns) == list(parquet.columns)
        assert len(csv) == len(parquet)
    periods = pd.read_csv(out_dir / "periods.csv")
    assert periods["period"].tolist() == list(range(1, len(periods) + 1))
    assert not list(out_dir.glob(".*.tmp")), "no temporary files are left behind"


def test_unknown_scenario_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MINIMAL), "--scenario", "nope"]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "no scenario 'nope'" in err and "known scenarios" in err


def test_out_path_that_is_a_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x", encoding="utf-8")
    assert main(["run", str(MINIMAL), "--out", str(f)]) == EXIT_INVALID
    assert "not a directory" in capsys.readouterr().err


def test_invalid_deal_in_run_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("deal: [1, 2\n", encoding="utf-8")
    assert main(["run", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:2:1:" in err and "YAML syntax error" in err and "line 1, column 7" in err


def test_console_script_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "ipabs", "validate", str(MINIMAL)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "ipabs", "validate", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "file not found" in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "ipabs", "frobnicate"], capture_output=True, text=True)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_trigger_periods_are_whole_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # cumulative_default_3pct fires in period 2 of cdr_stress; senior_interest_shortfall never does,
    # which used to turn every period into a float (15.0) in the text, the CSV and the JSON
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    import ipabs

    triggers = ipabs.run(ipabs.load_deal(deal), "cdr_stress").triggers
    for column in ("first_breached_period", "first_active_period"):
        assert str(triggers[column].dtype) == "Int64"
        assert triggers[column].iloc[0] == 2 and triggers[column].isna().iloc[1]
    assert main(["run", str(deal), "--scenario", "cdr_stress"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "active from period 2 (" in text and "period 2.0" not in text
    assert main(["run", str(deal), "--scenario", "cdr_stress", "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    fired, never = doc["triggers"]
    assert fired["first_active_period"] == 2 and isinstance(fired["first_active_period"], int)
    assert fired["first_breached_period"] == 2 and isinstance(fired["first_breached_period"], int)
    assert never["first_active_period"] is None and never["first_breached_period"] is None
    out_dir = tmp_path / "out"
    assert main(["run", str(deal), "--scenario", "cdr_stress", "--out", str(out_dir)]) == EXIT_OK
    lines = (out_dir / "triggers.csv").read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith("cumulative_default_3pct,") and ",2,2," in lines[1]
    assert ",,," in lines[2]  # never: empty cells
    parquet = pd.read_parquet(out_dir / "triggers.parquet")
    assert str(parquet["first_active_period"].dtype) == "Int64"
