"""Implied ratings two ways: expected loss / default probability against the rating table, and
breakeven default rates against target default rates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_montecarlo import LOAN, homogeneous_deal

from ipabs.analytics import metrics
from ipabs.analytics.breakeven import breakeven
from ipabs.analytics.implied import _best_rating, default_multiples, implied_ratings
from ipabs.analytics.ratings import load_rating_table
from ipabs.cli import main
from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("implied") / "pool.yaml"
    path.write_text(homogeneous_deal(20, LOAN, 3 * LOAN, 0.02, 0.2, 0.4))
    return path


def test_default_multiples_follow_the_broad_grades() -> None:
    m = default_multiples(load_rating_table())
    assert m["Aaa"] == 5.0 and m["Aa2"] == 4.0 and m["A3"] == 3.0 and m["Baa1"] == 2.0
    assert m["Ba3"] == 1.5 and m["B2"] == 1.25 and m["Caa1"] == 1.0 and m["Ca"] == 1.0
    assert len(m) == len(load_rating_table().ratings)


def test_best_rating_is_the_best_whose_tdr_is_covered() -> None:
    table = load_rating_table()
    tdr = {r: 0.5 - 0.02 * i for i, r in enumerate(table.ratings)}
    assert _best_rating(table, tdr, 0.5) == "Aaa"
    assert _best_rating(table, tdr, 0.45) == "Aa3"  # 0.44 <= 0.45 < 0.46
    assert _best_rating(table, tdr, 0.0) is None
    assert _best_rating(table, tdr, math.nan) is None


def test_both_ways_agree_with_their_inputs(pool_file: Path) -> None:
    table = load_rating_table()
    report = implied_ratings(pool_file, paths=20_000, seed=7)
    frame = report.to_frame()
    assert list(frame.index) == ["senior", "junior"]
    for t in report.tranches:
        # way 1: the table's lookups at the tranche's WAL (one-year bullets: WAL 1)
        assert t.horizon_years == pytest.approx(1.0)
        assert t.el_rating == table.rating_for_expected_loss(t.expected_loss, 1.0)
        assert t.pd_rating == table.rating_for_default_probability(t.probability_of_loss, 1.0)
        best, worst = t.el_rating_range
        assert table.ratings.index(best) <= table.ratings.index(t.el_rating) <= table.ratings.index(worst)
        # way 2: the BDR is the breakeven minimum; the rating's TDR is covered, the next one's not
        be = breakeven(pool_file, t.tranche).minimum
        assert t.bdr == pytest.approx(be["bdr"]) and t.bdr_stress == be["stress"]
        tdr = report.tdr[report.tdr["tranche"] == t.tranche].set_index("rating")
        q = tdr["tdr_quantile"]
        assert np.all(np.diff(q.to_numpy()) <= 1e-15), "a better rating must survive more defaults"
        if t.bdr_rating_quantile is not None:
            i = table.ratings.index(t.bdr_rating_quantile)
            assert q.iloc[i] <= t.bdr
            assert i == 0 or q.iloc[i - 1] > t.bdr
    # the TDR quantile is the pool default distribution's quantile at 1 - PD(rating)
    result_rate = report.tdr.set_index(["tranche", "rating"]).loc[("senior", "Baa2")]
    assert result_rate["default_probability"] == pytest.approx(table.default_probability("Baa2", 1.0))
    assert result_rate["tdr_multiple"] == pytest.approx(report.base_rate * 2.0)
    # the senior is at least as well rated as the junior, both ways
    s, j = report.tranches
    assert table.ratings.index(s.el_rating) <= table.ratings.index(j.el_rating)
    assert s.bdr >= j.bdr


def test_tdr_quantile_matches_the_simulated_distribution(pool_file: Path) -> None:
    import ipabs

    result = ipabs.simulate(pool_file, paths=5_000, seed=3)
    report = implied_ratings(pool_file, result=result)
    assert report.paths == 5_000
    table = load_rating_table()
    h = report.tranches[0].horizon_years
    level = 1.0 - table.default_probability("Ba1", h)
    expected = metrics.quantile(result.pool_outcomes[:, P_DEFAULT_RATE], level).value
    got = report.tdr.set_index(["tranche", "rating"]).loc[("senior", "Ba1"), "tdr_quantile"]
    assert got == expected


def test_royalty_only_deal_has_no_bdr() -> None:
    report = implied_ratings(ROOT / "scenarios" / "royalty_dscr.yaml", paths=2_000, seed=1)
    assert all(math.isnan(t.bdr) for t in report.tranches)
    assert all(t.el_rating is not None or t.expected_loss > 0.5 for t in report.tranches)
    assert not report.breakeven_applies
    assert "no loans or leases" in report.breakeven_reason
    assert report.tdr.empty  # no pool default rate to take quantiles of


@pytest.mark.parametrize("deal", ["royalty_dscr.yaml", "hospital_income_share.yaml"])
def test_rate_says_what_does_not_apply_to_a_royalty_only_deal(
    deal: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the pool has no loan or lease balance: no breakeven default rate, no pool default rate
    # distribution, so no target default rates; the rating-table comparison still applies
    args = ["rate", str(ROOT / "scenarios" / deal), "--paths", "1000", "--seed", "1"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "1. expected loss and default probability" in text
    assert "does not apply" in text and "no loans or leases" in text
    assert "TDR quantile" not in text and "target default rates used" not in text
    assert "0% .. 0%" not in text and len(text.splitlines()) < 25
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["breakeven"]["applies"] is False and "no loans or leases" in doc["breakeven"]["reason"]
    assert doc["tdr"] == []
    assert all(t["bdr"] is None and t["el_rating"] for t in doc["tranches"])


def test_rate_risk_file_replaces_the_risk_section(
    pool_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    data = yaml.safe_load(pool_file.read_text())
    data["risk"]["correlation"] = 0.05
    risk_file = tmp_path / "risk.yaml"
    risk_file.write_text(yaml.safe_dump({"risk": data["risk"]}))
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    args = ["--paths", "2000", "--seed", "3", "--json"]
    docs = []
    for call in (
        ["rate", str(pool_file), *args],
        ["rate", str(pool_file), "--risk", str(risk_file), *args],
        ["rate", str(edited), *args],
    ):
        assert main(call) == 0
        docs.append(json.loads(capsys.readouterr().out))
    own, given, same = docs
    assert given["tranches"] == same["tranches"] and given["tdr"] == same["tdr"]
    assert given["tranches"] != own["tranches"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk:\n  correlation: 2\n")
    assert main(["rate", str(pool_file), "--risk", str(bad), "--paths", "100"]) == 2
    assert f"{bad}:2:16" in capsys.readouterr().err


def test_rate_command(pool_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["rate", str(pool_file), "--paths", "3000", "--seed", "2"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in doc["tranches"]] == ["senior", "junior"]
    assert {"el_rating", "pd_rating", "bdr", "bdr_rating_quantile", "bdr_rating_multiple"} <= set(
        doc["tranches"][0]
    )
    assert len(doc["tdr"]) == 2 * 20
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "1. expected loss and default probability" in text and "2. breakeven default rate" in text
    multiples = tmp_path / "multiples.yaml"
    multiples.write_text("AAA: 6\nBBB: 2.5\n")
    assert main([*args, "--multiples", str(multiples), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["multiples"] == {"Aaa": 6.0, "Baa2": 2.5}
    multiples.write_text("AAA: -1\n")
    assert main([*args, "--multiples", str(multiples)]) == 2
    assert f"{multiples}:1:6: AAA: must be greater than 0, got -1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        # each problem at its place in the file, as in a deal file
        ("AAA: 5\nAA: -3\n", "2:5: AA", "must be greater than 0, got -3"),
        ("AAA: 5\nAA: lots\n", "2:5: AA", "expected a number, got 'lots'"),
        ("AAA: 5\nAAB: 4\n", "2:1: AAB", "unknown rating 'AAB'"),
        ("AAA: 5\nAaa: 4\n", "2:1: Aaa", "'Aaa' is given twice (first as 'AAA' at line 1)"),
        ("- AAA\n- 5\n", "1:1: ", "a multiples file is a mapping of rating to a positive stress multiple"),
        ("AAA: 5\nAAA: 6\n", "2:1: AAA", "duplicate key 'AAA'"),
    ],
)
def test_multiples_file_errors_are_located(tmp_path: Path, text: str, where: str, message: str) -> None:
    from ipabs.analytics.implied import load_multiples
    from ipabs.errors import DealError

    path = tmp_path / "multiples.yaml"
    path.write_text(text)
    with pytest.raises(DealError) as exc:
        load_multiples(path, load_rating_table())
    assert f"{path}:{where}" in str(exc.value) and message in str(exc.value)


def test_multiples_file_reads_aliases(tmp_path: Path) -> None:
    from ipabs.analytics.implied import load_multiples

    path = tmp_path / "multiples.yaml"
    path.write_text("AAA: 6\nBaa2: 2.5\nA: 3\n")
    assert load_multiples(path, load_rating_table()) == {"Aaa": 6.0, "Baa2": 2.5, "A2": 3.0}
