"""Sizing credit enhancement to a rating: against the exact finite-pool loss, round trips,
monotone common-random-number searches, reserves and caps, errors and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import mc_reference as ref
import numpy as np
import pytest
from helpers import compile_text
from test_montecarlo import LOAN, homogeneous_deal

from ipabs.analytics.ratings import load_rating_table
from ipabs.analytics.sizing import size_structure
from ipabs.cli import main
from ipabs.deal.load import parse_deal
from ipabs.errors import IpabsError
from ipabs.montecarlo import simulate

N = 20
P = 0.02
RHO = 0.2
RECOVERY = 0.4


@pytest.fixture(scope="module")
def pool_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sizing") / "pool.yaml"
    path.write_text(homogeneous_deal(N, LOAN, 3 * LOAN, P, RHO, RECOVERY))
    return path


def exact_senior_el(senior: float) -> float:
    """Exact expected loss share of a senior of ``senior`` on top of the rest of the pool."""
    total = N * LOAN
    lgd = (1.0 - RECOVERY) * LOAN
    return ref.finite_pool_tranche_loss(N, P, RHO, lgd, total - senior, total) / senior


@pytest.mark.parametrize("rating", ["Baa2", "A1"])
def test_sized_senior_meets_the_table_against_the_exact_loss(pool_file: Path, rating: str) -> None:
    result = size_structure(pool_file, "senior", rating, paths=40_000, seed=3)
    assert result.size is not None
    table = load_rating_table()
    limit = table.expected_loss(rating, 1.0)  # every loan is a one-year bullet: WAL 1
    assert result.horizon_years == pytest.approx(1.0)
    assert result.limit == pytest.approx(limit)
    assert result.metric <= limit
    # the exact loss of the sized structure is at the limit within the estimate's noise; one
    # more loan's worth of senior would be clearly over it (the loss is a step function of the
    # number of defaults, so the search boundary sits on a step)
    assert exact_senior_el(result.size) <= limit + 4 * result.metric_se
    assert exact_senior_el(result.size + LOAN) > limit
    assert result.balances["senior"] + result.balances["junior"] == pytest.approx(N * LOAN)
    assert result.subordination == pytest.approx(result.balances["junior"] / (N * LOAN))


def test_round_trip_with_fresh_paths_meets_the_target(pool_file: Path) -> None:
    result = size_structure(pool_file, "senior", "Baa2", paths=20_000, seed=1)
    text = (
        pool_file.read_text()
        .replace(f"balance: {N * LOAN - 3 * LOAN:.0f}", f"balance: {result.balances['senior']!r}", 1)
        .replace(f"balance: {3 * LOAN:.0f}\n", f"balance: {result.balances['junior']!r}\n", 1)
    )
    deal = parse_deal(text, "sized.yaml")
    assert [t.balance for t in deal.spec.tranches] == [result.balances["senior"], result.balances["junior"]]
    again = simulate(compile_text(text), paths=40_000, seed=99).tranches.loc["senior"]
    combined = np.hypot(again["expected_loss_se"], result.metric_se)
    assert again["expected_loss"] <= result.limit + 4 * combined


def test_the_search_is_monotone_with_common_random_numbers(pool_file: Path) -> None:
    result = size_structure(pool_file, "senior", "A3", paths=5_000, seed=2)
    trials = result.trials_frame().sort_values("size")
    metric = trials["metric"].to_numpy()
    assert np.all(np.diff(metric) >= -1e-15), "a bigger senior cannot lose less on the same paths"
    meets = trials["meets"].to_numpy()
    assert meets[0] and not meets[-1]
    assert np.all(np.diff(meets.astype(int)) <= 0), "met below the boundary, missed above it"


def test_probability_of_loss_criterion(pool_file: Path) -> None:
    el = size_structure(pool_file, "senior", "Baa2", paths=10_000, seed=4)
    pd_ = size_structure(pool_file, "senior", "Baa2", paths=10_000, seed=4, criterion="default_probability")
    # losing at all is likelier than the expected loss share: the PD criterion is stricter
    assert pd_.size < el.size
    assert pd_.metric <= pd_.limit


RESERVE_DEAL = """\
deal:
  name: reserve sizing
  closing_date: 2025-01-01
  first_payment_date: 2025-04-01
  payment_frequency: quarterly
  legal_final_date: 2027-01-01
  day_count: 30/360
pools:
  - name: pool
    loans:
{loans}
tranches:
  - {{name: senior, balance: 9000000, coupon: 0.04}}
  - {{name: junior, balance: 1000000, coupon: 0.06}}
accounts:
  - {{name: reserve, initial: 100000, target: 100000}}
risk:
  correlation: 0.25
  default_pd: 0.04
  recovery: {{model: constant, rate: 0.2, lag_months: 3}}
waterfalls:
  normal:
    - pay_interest: senior
    - draw: {{from: reserve, covers: [senior.interest, senior.principal]}}
    - pay_interest: junior
    - pay_principal: senior
    - pay_principal: junior
    - pay_residual: junior
"""


@pytest.fixture(scope="module")
def reserve_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    loans = "\n".join(
        f"      - {{obligor: R{i}, balance: 1000000, rate: 0.05, term_months: 24, amortisation: bullet, "
        "payment_frequency: quarterly}"
        for i in range(10)
    )
    path = tmp_path_factory.mktemp("reserve") / "deal.yaml"
    path.write_text(RESERVE_DEAL.format(loans=loans))
    return path


def test_reserve_sizing_finds_the_smallest_reserve(reserve_file: Path) -> None:
    result = size_structure(reserve_file, "senior", "A3", by="reserve", paths=5_000, seed=5)
    assert result.size is not None and result.target_name == "reserve"
    trials = result.trials_frame().sort_values("size")
    assert np.all(np.diff(trials["metric"].to_numpy()) <= 1e-15), "more reserve cannot hurt the senior"
    smaller = trials[trials["size"] < result.size]
    assert not smaller["meets"].any()
    assert result.metric <= result.limit
    # the tranches are not touched
    assert result.balances == {"senior": 9_000_000.0, "junior": 1_000_000.0}


def test_sizing_errors(pool_file: Path, reserve_file: Path, tmp_path: Path) -> None:
    with pytest.raises(IpabsError, match="no tranche 'mezz'"):
        size_structure(pool_file, "mezz", "Aaa", paths=100)
    with pytest.raises(IpabsError, match="most junior"):
        size_structure(pool_file, "junior", "Aaa", paths=100)
    with pytest.raises(IpabsError, match="no reserve account"):
        size_structure(pool_file, "senior", "Aaa", by="reserve", paths=100)
    with pytest.raises(IpabsError, match="no deficiency payment"):
        size_structure(reserve_file, "senior", "Aaa", by="deficiency_cap", paths=100)
    with pytest.raises(IpabsError, match="unknown rating"):
        size_structure(pool_file, "senior", "AAAA", paths=100)
    with pytest.raises(IpabsError, match="criterion"):
        size_structure(pool_file, "senior", "Aaa", criterion="spread", paths=100)
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        pool_file.read_text().split("risk:")[0]
        + "waterfalls:"
        + pool_file.read_text().split("waterfalls:")[1]
    )
    with pytest.raises(IpabsError, match="needs a `risk` section"):
        size_structure(bare, "senior", "Aaa", paths=100)


def test_size_command(pool_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "size",
        str(pool_file),
        "--tranche",
        "senior",
        "--target",
        "BBB",
        "--paths",
        "3000",
        "--seed",
        "2",
    ]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rating"] == "Baa2" and doc["tranche"] == "senior"
    assert doc["size"] == pytest.approx(doc["balances"]["senior"])
    assert doc["metric"] <= doc["limit"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "size found:" in text and "structures tried" in text
    assert main(["size", str(pool_file), "--tranche", "nope", "--target", "Aaa", "--paths", "10"]) == 2
    assert "no tranche 'nope'" in capsys.readouterr().err


def test_size_samples_like_mc_by_default() -> None:
    # one default for both commands: `auto` (importance sampling only when a plain pilot sees
    # too few of the tranche's losses)
    import inspect

    from ipabs.cli import build_parser

    parser = build_parser()
    mc = parser.parse_args(["mc", "d.yaml"])
    size = parser.parse_args(["size", "d.yaml", "--tranche", "senior", "--target", "Aaa"])
    assert size.importance_sampling == mc.importance_sampling == "auto"
    assert inspect.signature(size_structure).parameters["importance_sampling"].default == "auto"
    flag = ["size", "d.yaml", "--tranche", "senior", "--target", "Aaa", "--importance-sampling"]
    assert parser.parse_args(flag).importance_sampling == "on"
    assert parser.parse_args([*flag[:-1], "--importance-sampling", "off"]).importance_sampling == "off"


def test_auto_sampling_aims_at_a_remote_target(pool_file: Path) -> None:
    # the senior loses only when 6 of the 20 loans default: a plain pilot of 2,000 paths sees
    # fewer than 20 such paths, so `auto` importance-samples, as `on` does; `off` stays plain
    remote = size_structure(pool_file, "senior", "Aaa", paths=2_000, seed=1)
    assert remote.sampling == "importance"
    plain = size_structure(pool_file, "senior", "Aaa", paths=2_000, seed=1, importance_sampling=False)
    assert plain.sampling == "plain"
    assert size_structure(
        pool_file, "senior", "Aaa", paths=2_000, seed=1, importance_sampling=True
    ).sampling == ("importance")


def test_size_risk_file_replaces_the_risk_section(pool_file: Path, tmp_path: Path) -> None:
    # the same risk section with a correlation of 0: a different answer from the deal's own
    import yaml

    data = yaml.safe_load(pool_file.read_text())
    risk = dict(data["risk"])
    risk["correlation"] = 0.0
    risk_file = tmp_path / "risk.yaml"
    risk_file.write_text(yaml.safe_dump({"risk": risk}))
    own = size_structure(pool_file, "senior", "Baa2", paths=2_000, seed=1, importance_sampling=False)
    other = size_structure(
        pool_file, "senior", "Baa2", paths=2_000, seed=1, importance_sampling=False, risk=risk_file
    )
    data["risk"] = risk
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    same = size_structure(edited, "senior", "Baa2", paths=2_000, seed=1, importance_sampling=False)
    assert other.size == same.size and other.metric == same.metric
    assert other.size != own.size
    bad = tmp_path / "bad.yaml"
    bad.write_text("risk:\n  correlation: 2\n")
    assert main(["size", str(pool_file), "--tranche", "senior", "--target", "Aaa", "--risk", str(bad)]) == 2
