"""``ipabs sweep`` and ``risk.pd_multiplier``: parameter paths, points equal to direct runs of the
edited deal, monotone sensitivities under common random numbers, errors that name the setting
and the point, and the command line."""

from __future__ import annotations

import io
import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipabs import api
from ipabs.analytics.sweep import (
    PathError,
    edit_deal,
    parse_path,
    parse_setting,
    resolve_path,
    set_path,
    sweep,
)
from ipabs.cli import main
from ipabs.deal.load import _build, load_deal, load_risk, parse_deal
from ipabs.deal.source import parse_yaml, read_yaml
from ipabs.engine.compile import compile_deal
from ipabs.errors import DealError, IpabsError
from ipabs.montecarlo import simulate
from ipabs.risk.model import cumulative_pd
from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
K_SE = 4.0  # statistical tolerance in standard errors
UNIT = 1000.0  # bit-mask deals: loan i owes UNIT x 2^i


# --------------------------------------------------------------------------- deals


def bitmask_deal(fields: list[str], risk: str, *, semi_annual: bool = False) -> str:
    """Zero-rate bullet loans maturing at legal final; loan ``i`` owes ``UNIT x 2^i``, so a
    path's defaulted balance tells which obligors defaulted. One year (annual) or 18 months
    (semi-annual)."""
    frequency, first, final, term = (
        ("semi-annual", "2025-07-01", "2026-07-01", 18)
        if semi_annual
        else ("annual", "2026-01-01", "2026-01-01", 12)
    )
    loans = "\n".join(
        f"      - {{obligor: O{i}, balance: {UNIT * 2**i:.0f}, rate: 0, term_months: {term}, "
        f"amortisation: bullet, payment_frequency: {frequency}, {extra}}}"
        for i, extra in enumerate(fields)
    )
    return f"""deal:
  name: bit mask
  closing_date: 2025-01-01
  first_payment_date: {first}
  payment_frequency: {frequency}
  legal_final_date: {final}
obligors:
  - {{name: O2, pd: 0.05}}
pools:
  - name: pool
    loans:
{loans}
tranches:
  - {{name: notes, balance: {UNIT * (2 ** len(fields) - 1):.0f}}}
risk:
  {risk}
waterfalls:
  normal:
    - pay_principal: notes
    - pay_residual: notes
"""


def defaulted(pool_outcomes: np.ndarray, n: int) -> np.ndarray:
    """(paths, n) booleans: which obligors of a :func:`bitmask_deal` defaulted."""
    mask = np.rint(pool_outcomes[:, P_DEFAULT_RATE] * (2**n - 1)).astype(np.int64)
    return ((mask[:, None] >> np.arange(n)[None, :]) & 1).astype(bool)


# twenty 5m one-year bullet loans, a zero-coupon senior note paid first, the rest to `sub`: the
# senior's loss on a path is max(0, balance - cash), so it cannot grow as the senior shrinks
SEQUENTIAL = """deal:
  name: Sequential test deal
  closing_date: 2025-01-01
  first_payment_date: 2025-07-01
  payment_frequency: semi-annual
  legal_final_date: 2026-07-01
pools:
  - name: park
    loans:
LOANS
scenarios:
  base: {}
  stress: {defaults: {cdr: 0.3}, recovery: {rate: 0.4, lag_months: 6}}
tranches:
  - {name: senior, balance: 80m}
  - {name: sub, balance: 10m}
fees:
  - {name: servicing, rate: 0.5%, base: pool_balance_start}
accounts:
  - {name: reserve, initial: 1m, target: 1m}
risk:
  correlation: 0.3
  default_pd: 0.1
  recovery: {model: constant, rate: 0.4, lag_months: 6}
waterfalls:
  normal:
    - pay_fee: servicing
    - draw: {from: reserve, covers: [servicing]}
    - pay_principal: senior
    - pay_principal: sub
    - pay_residual: sub
""".replace(
    "LOANS",
    "\n".join(
        f"      - {{obligor: SME-{i:02d}, balance: 5m, rate: 0, term_months: 12, amortisation: bullet}}"
        for i in range(20)
    ),
)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deals") / "sequential.yaml"
    path.write_text(SEQUENTIAL, encoding="utf-8")
    return path


def assert_within(value: float, expected: float, se: float, what: str) -> None:
    assert se > 0.0, f"{what}: zero standard error"
    assert abs(value - expected) <= K_SE * se, f"{what}: {value:.5g}, expected {expected:.5g} (se {se:.3g})"


# --------------------------------------------------------------------------- pd_multiplier

PD_FIELDS = ["pd: 0.01", "pd: 0.05", "industry: chips", "grade: B", "region: north", "pd_curve: [0.2, 0.4]"]
PD_ONE_YEAR = [
    0.01,
    0.05,
    0.05,
    0.15,
    0.25,
    0.2,
]  # own pd, own pd, obligors section, grade, default_pd, curve


@pytest.mark.parametrize("multiplier", [2.0, 0.5])
def test_pd_multiplier_scales_each_obligors_default_frequency(multiplier: float) -> None:
    """Same paths (seed) at multiplier 1 and m: each obligor defaults with m x its PD, from
    whichever source its PD comes."""
    risk = "correlation: 0.25\n  default_pd: 0.25\n  pd_by_grade: {B: 0.15}"
    text = bitmask_deal(PD_FIELDS, risk)
    paths = 20_000
    base = simulate(parse_deal(text), paths=paths, seed=3, threads=2)
    stressed = simulate(
        parse_deal(text.replace("correlation: 0.25", f"correlation: 0.25\n  pd_multiplier: {multiplier}")),
        paths=paths,
        seed=3,
        threads=2,
    )
    d1, dm = defaulted(base.pool_outcomes, len(PD_FIELDS)), defaulted(stressed.pool_outcomes, len(PD_FIELDS))
    for i, p in enumerate(PD_ONE_YEAR):
        for d, m in ((d1, 1.0), (dm, multiplier)):
            q = m * p
            assert_within(
                d[:, i].mean(), q, math.sqrt(q * (1 - q) / paths), f"obligor {i} ({PD_FIELDS[i]}) x{m}"
            )
        # common random numbers: a larger PD adds defaults, never removes one
        more, fewer = (dm, d1) if multiplier > 1 else (d1, dm)
        assert not (fewer[:, i] & ~more[:, i]).any(), f"obligor {i}"
        ratio = dm[:, i].mean() / d1[:, i].mean()
        assert ratio == pytest.approx(
            multiplier, rel=K_SE * math.sqrt(1 / (paths * p * multiplier) + 1 / (paths * p))
        )


def test_pd_multiplier_multiplies_the_cumulative_pd_not_the_annual_pd() -> None:
    """18 months: m x (1 - (1 - p)^1.5), not 1 - (1 - m p)^1.5."""
    text = bitmask_deal(
        ["pd: 0.3", "pd_curve: [0.1, 0.3]"], "correlation: 0.2\n  pd_multiplier: 2", semi_annual=True
    )
    t = 1.5 + 1 / 365  # 2025-01-01 to 2026-07-01: 546 days
    expected = [2 * (1 - 0.7**t), 2 * float(cumulative_pd(None, [0.1, 0.3], np.array([t]))[0])]
    assert float(cumulative_pd(0.3, None, np.array([t]), 2.0)[0]) == pytest.approx(expected[0])
    assert abs(expected[0] - (1 - 0.4**t)) > 0.05  # the two readings differ by far more than the noise
    result = simulate(parse_deal(text), paths=20_000, seed=4, threads=2)
    d = defaulted(result.pool_outcomes, 2)
    for i, q in enumerate(expected):
        assert_within(d[:, i].mean(), q, math.sqrt(q * (1 - q) / result.paths), f"obligor {i}")


def test_pd_multiplier_zero_switches_defaults_off() -> None:
    text = bitmask_deal(
        ["pd: 0.3", "grade: B"], "correlation: 0.2\n  pd_by_grade: {B: 0.5}\n  pd_multiplier: 0"
    )
    result = simulate(parse_deal(text), paths=2_000, seed=1, threads=1)
    assert not result.pool_outcomes[:, P_DEFAULT_RATE].any()


@pytest.mark.parametrize(
    ("risk", "message"),
    [
        ("default_pd: 0.4\n  pd_multiplier: 3", "default_pd"),
        ("pd_by_grade: {B: 0.3, C: 0.6}\n  pd_multiplier: 2", "pd_by_grade 'C'"),
        ("default_pd: 0.1\n  pd_multiplier: -1", "must not be negative"),
        ("default_pd: 0.1\n  pd_multiplier: .inf", "finite"),
    ],
)
def test_a_multiplied_section_pd_of_one_or_more_is_a_located_error(risk: str, message: str) -> None:
    text = bitmask_deal(["grade: B"], "correlation: 0.2\n  " + risk)
    with pytest.raises(DealError) as info:
        parse_deal(text, file="deal.yaml")
    (issue,) = info.value.issues
    line = next(n + 1 for n, s in enumerate(text.splitlines()) if "pd_multiplier" in s)
    assert (issue.path, issue.line) == ("risk.pd_multiplier", line), str(issue)
    assert message in issue.message


@pytest.mark.parametrize(
    ("second", "risk", "named"),
    [
        # 3 x 30% < 1, but 18 months of a 30% annual PD is 41%, and 3 x 41% > 1
        ("pd: 0.3", "", "'O1' (pd: 3 x PD reaches 1.24"),
        ("pd_curve: [0.1, 0.45]", "", "'O1' (pd_curve: 3 x PD reaches 1.35"),
        ("grade: C", "\n  pd_by_grade: {C: 0.3}", "'O1' (grade 'C' (risk.pd_by_grade): 3 x PD reaches 1.24"),
    ],
)
def test_a_multiplied_obligor_pd_of_one_or_more_names_the_obligor(second: str, risk: str, named: str) -> None:
    text = bitmask_deal(["pd: 0.01", second], f"correlation: 0.2\n  pd_multiplier: 3{risk}", semi_annual=True)
    model = compile_deal(parse_deal(text))
    with pytest.raises(IpabsError, match="pd_multiplier 3 lifts") as info:
        simulate(model, paths=10, seed=1)
    assert not isinstance(info.value, DealError)
    assert named in str(info.value) and "'O0'" not in str(info.value)


# --------------------------------------------------------------------------- paths


@pytest.fixture(scope="module")
def caohejing_data() -> dict:
    data, _ = read_yaml(CAOHEJING)
    return data


@pytest.mark.parametrize(
    ("path", "concrete"),
    [
        ("tranches.sub.balance", ("tranches", 1, "balance")),
        ("tranches[1].balance", ("tranches", 1, "balance")),
        ("tranches.1.balance", ("tranches", 1, "balance")),
        ("tranches[sub].balance", ("tranches", 1, "balance")),
        ("pools.caohejing_park.loans[3].rate", ("pools", 0, "loans", 3, "rate")),
        (
            "pools[0].loans.Caohejing-Huazhi-AI-05.pledged_ip.appraised_value",
            ("pools", 0, "loans", 4, "pledged_ip", "appraised_value"),
        ),
        ("accounts.reserve.target.share", ("accounts", 0, "target", "share")),
        ("fees.rating_and_audit.annual_amount", ("fees", 1, "annual_amount")),
        ("risk.factors.global", ("risk", "factors", "global")),
        ("scenarios.cdr_stress.defaults.cdr", ("scenarios", "cdr_stress", "defaults", "cdr")),
        # fields the file leaves out
        ("risk.pd_multiplier", ("risk", "pd_multiplier")),
        ("risk.royalty.volatility", ("risk", "royalty", "volatility")),
        ("tranches.senior.defer_interest", ("tranches", 0, "defer_interest")),
        ("scenarios.base.prepayment.cpr", ("scenarios", "base", "prepayment", "cpr")),
    ],
)
def test_paths_by_name_and_index(caohejing_data: dict, path: str, concrete: tuple) -> None:
    before = json.dumps(caohejing_data, default=str)
    assert resolve_path(caohejing_data, path) == concrete
    assert json.dumps(caohejing_data, default=str) == before  # resolving changes nothing


def test_set_path_edits_in_place_and_the_deal_takes_the_value(caohejing_data: dict) -> None:
    import copy

    data = copy.deepcopy(caohejing_data)
    _, smap = read_yaml(CAOHEJING)
    assert set_path(data, "tranches.senior.balance", "90m") == ("tranches", 0, "balance")
    assert set_path(data, "risk.recovery.value_mean", "25%") == ("risk", "recovery", "value_mean")
    assert set_path(data, ["risk", "pd_multiplier"], 1.5) == ("risk", "pd_multiplier")
    assert set_path(data, "scenarios.base.recovery.rate", 0.3) == ("scenarios", "base", "recovery", "rate")
    deal = _build(data, smap, CAOHEJING)
    assert deal.spec.tranches[0].balance == 90e6
    assert deal.spec.risk is not None and deal.spec.risk.recovery.value_mean == 0.25
    assert deal.spec.risk.pd_multiplier == 1.5
    assert deal.spec.scenarios["base"].recovery.rate == 0.3
    assert caohejing_data["tranches"][0]["balance"] == "95m"


def test_set_path_creates_a_missing_section() -> None:
    data, smap = parse_yaml((ROOT / "tests" / "deals" / "minimal.yaml").read_text(encoding="utf-8"))
    assert "risk" not in data
    set_path(data, "risk.default_pd", 0.02)
    set_path(data, "risk.recovery.rate", 0.3)
    deal = _build(data, smap, None)
    assert (
        deal.spec.risk is not None
        and deal.spec.risk.default_pd == 0.02
        and deal.spec.risk.recovery.rate == 0.3
    )


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (
            "tranches.senior.balanse",
            ["'balanse'", "tranches[0]", "did you mean 'balance'", "available keys: name, balance"],
        ),
        ("tranches.A.balance", ["no element named 'A' in tranches", "available: senior, sub"]),
        ("tranches[2].balance", ["index 2 is out of range", "tranches has 2 element"]),
        ("risk.factor.global", ["unknown key 'factor' in risk", "did you mean 'factors'", "pd_multiplier"]),
        ("pools.park.loans[0].rate", ["no element named 'park' in pools", "caohejing_park"]),
        ("risk.recovery[0]", ["risk.recovery is a mapping", "available keys: model, rate"]),
        ("tranches.senior.balance.value", ["tranches[0].balance is '95m', not a mapping"]),
        ("scenarios.stress.defaults", ["unknown key 'stress' in scenarios", "base, cdr_stress"]),
        ("risk.pd_by_grade.A", ["risk.pd_by_grade is not written"]),
        ("dealz.name", ["unknown key 'dealz' in the deal", "did you mean 'deal'"]),
    ],
)
def test_unknown_paths_name_the_unknown_part_and_list_the_keys(
    caohejing_data: dict, path: str, words: list[str]
) -> None:
    with pytest.raises(PathError) as info:
        resolve_path(caohejing_data, path)
    message = str(info.value)
    assert message.startswith(path + ": ")
    for w in words:
        assert w in message, message


def test_a_name_shared_by_two_loans_asks_for_an_index() -> None:
    text = (
        (ROOT / "tests" / "deals" / "minimal.yaml")
        .read_text(encoding="utf-8")
        .replace("BetaSoft", "AlphaTech")
    )
    data, _ = parse_yaml(text)
    with pytest.raises(
        PathError, match=r"'AlphaTech' names several elements of pools\[0\].loans \(indices 0, 1\)"
    ):
        resolve_path(data, "pools.park.loans.AlphaTech.rate")
    assert resolve_path(data, "pools.park.loans[1].rate") == ("pools", 0, "loans", 1, "rate")


@pytest.mark.parametrize("text", ["", "a..b", ".a", "a.", "a[]", "a[0", "a b"])
def test_malformed_paths(text: str) -> None:
    with pytest.raises(PathError, match="not a parameter path"):
        parse_path(text)


def test_settings_are_read_as_yaml_scalars() -> None:
    assert parse_setting("risk.correlation=0.1, 0.2") == ("risk.correlation", [0.1, 0.2])
    assert parse_setting("tranches[0].coupon=5%,2.5%") == ("tranches[0].coupon", ["5%", "2.5%"])
    assert parse_setting("tranches.a.balance=1e8,12.5m,1_000") == (
        "tranches.a.balance",
        ["1e8", "12.5m", 1000],
    )
    assert parse_setting("tranches.a.defer_interest=true,false")[1] == [True, False]
    for bad in ["risk.correlation", "=1", "risk.correlation=", "risk.correlation=0.1,,0.2", "x='a"]:
        with pytest.raises(IpabsError):
            parse_setting(bad)


# --------------------------------------------------------------------------- points = direct runs


def test_a_deterministic_point_equals_a_run_of_the_edited_deal() -> None:
    text = CAOHEJING.read_text(encoding="utf-8")
    table = sweep(
        CAOHEJING,
        {"tranches.senior.balance": ["95m", "90m"], "scenarios.two_defaults.recovery.rate": [0.25, "10%"]},
        scenario="two_defaults",
    )
    assert len(table) == 4 * 2
    assert list(table.columns[:3]) == [
        "tranches.senior.balance",
        "scenarios.two_defaults.recovery.rate",
        "tranche",
    ]
    edited = text.replace("balance: 95m ", "balance: 90m ").replace(
        "recovery: {rate: 0.25, basis: appraisal, lag_months: 6}",
        "recovery: {rate: 0.1, basis: appraisal, lag_months: 6}",
    )
    assert edited.count("90m") == 1 and "rate: 0.1," in edited
    direct = api.run(parse_deal(edited, str(CAOHEJING)), "two_defaults").summary
    rows = table[
        (table["tranches.senior.balance"] == 90e6) & (table["scenarios.two_defaults.recovery.rate"] == 0.1)
    ]
    assert rows["tranche"].tolist() == list(direct.index)
    for metric in ("original_balance", "loss", "loss_pct", "wal_years", "yield"):
        assert rows[metric].tolist() == direct[metric].tolist(), metric
    # the base point is the deal as written
    base = api.run(load_deal(CAOHEJING), "two_defaults").summary
    rows = table[
        (table["tranches.senior.balance"] == 95e6) & (table["scenarios.two_defaults.recovery.rate"] == 0.25)
    ]
    assert rows["loss"].tolist() == base["loss"].tolist()
    assert table.attrs["scenario"] == "two_defaults" and table.attrs["mode"] == "deterministic"


def test_a_monte_carlo_point_equals_a_simulation_of_the_edited_deal() -> None:
    text = CAOHEJING.read_text(encoding="utf-8")
    table = sweep(
        CAOHEJING,
        {"risk.pd_multiplier": [1, 1.5], "risk.recovery.value_mean": [0.2, 0.35]},
        paths=3_000,
        seed=11,
        threads=2,
    )
    assert len(table) == 4 * 2
    edited = text.replace("  copula: gaussian", "  pd_multiplier: 1.5\n  copula: gaussian", 1).replace(
        "value_mean: 0.20", "value_mean: 0.35"
    )
    direct = simulate(parse_deal(edited, str(CAOHEJING)), paths=3_000, seed=11, threads=1)
    rows = table[(table["risk.pd_multiplier"] == 1.5) & (table["risk.recovery.value_mean"] == 0.35)]
    expected = pd.DataFrame(direct.tranche_summary)
    for metric in (
        "expected_loss",
        "expected_loss_se",
        "probability_of_loss",
        "expected_wal_years",
        "mean_yield",
    ):
        assert rows[metric].tolist() == expected[metric].tolist(), metric
    assert (rows["pool_expected_loss"] == direct.pool_summary["expected_loss"]).all()
    assert (rows["pool_expected_default_rate"] == direct.pool_summary["expected_default_rate"]).all()


def test_a_loaded_deal_and_a_risk_file_give_the_same_points(tmp_path: Path) -> None:
    risk_file = tmp_path / "risk.yaml"
    risk_file.write_text(
        "risk:\n  correlation: 0.2\n  default_pd: 0.03\n  recovery: {rate: 0.3}\n", encoding="utf-8"
    )
    from_file = sweep(CAOHEJING, {"risk.correlation": [0.1, 0.3]}, paths=2_000, seed=5, risk=risk_file)
    loaded = sweep(
        load_deal(CAOHEJING), {"risk.correlation": [0.1, 0.3]}, paths=2_000, seed=5, risk=load_risk(risk_file)
    )
    pd.testing.assert_frame_equal(from_file, loaded)
    edited = tmp_path / "risk_03.yaml"
    edited.write_text(risk_file.read_text(encoding="utf-8").replace("0.2", "0.3"), encoding="utf-8")
    direct = simulate(CAOHEJING, paths=2_000, seed=5, risk=load_risk(edited))
    rows = from_file[from_file["risk.correlation"] == 0.3]
    assert rows["expected_loss"].tolist() == [r["expected_loss"] for r in direct.tranche_summary]


# --------------------------------------------------------------------------- sensitivities


def test_a_higher_pd_multiplier_never_lowers_the_pool_default_rate(sequential: Path) -> None:
    """Common random numbers: each obligor's default indicator is monotone in its PD on every
    path, so the mean default rate is too."""
    multipliers = [0.0, 0.5, 1.0, 2.0, 4.0]
    table = sweep(sequential, {"risk.pd_multiplier": multipliers}, paths=4_000, seed=2)
    rate = table[table["tranche"] == "senior"].set_index("risk.pd_multiplier")["pool_expected_default_rate"]
    assert rate.index.tolist() == multipliers
    assert rate.iloc[0] == 0.0
    assert (np.diff(rate.to_numpy()) > 0).all(), rate


def test_more_subordination_below_the_senior_lowers_its_expected_loss(sequential: Path) -> None:
    """A smaller senior note over the same pool (the rest paid to `sub`): on every path its loss
    share max(0, 1 - cash / balance) cannot rise."""
    table = sweep(sequential, {"tranches.senior.balance": ["90m", "80m", "70m"]}, paths=4_000, seed=3)
    senior = table[table["tranche"] == "senior"].set_index("tranches.senior.balance")
    el = senior["expected_loss"].to_numpy()
    assert senior.index.tolist() == [90e6, 80e6, 70e6]
    assert (np.diff(el) <= 0).all() and el[0] > el[-1] > 0.0, el
    assert senior["pool_expected_loss"].nunique() == 1  # the same paths at every point


def test_swept_values_are_the_validated_values(sequential: Path) -> None:
    table = sweep(sequential, {"fees.servicing.rate": ["0.5%", 0.01], "accounts.reserve.initial": ["1m", 0]})
    assert table["fees.servicing.rate"].tolist() == [0.005] * 4 + [0.01] * 4
    assert table["accounts.reserve.initial"].tolist() == [1e6, 1e6, 0.0, 0.0] * 2
    assert table["tranche"].tolist() == ["senior", "sub"] * 4


# --------------------------------------------------------------------------- errors


def test_an_invalid_value_names_the_setting_and_the_point(sequential: Path) -> None:
    with pytest.raises(IpabsError) as info:
        sweep(sequential, {"tranches.sub.balance": ["20m", "10m"], "risk.correlation": [0.2, 1.5]}, paths=10)
    message = str(info.value)
    assert message.startswith(
        "--set risk.correlation=0.2,1.5: 1.5 makes the deal invalid at point 2 of 4 "
    ), message
    assert "(tranches.sub.balance=20m, risk.correlation=1.5)" in message
    assert "risk.correlation: must be less than 1" in message


def test_a_value_invalid_only_through_a_cross_check_is_blamed(sequential: Path) -> None:
    with pytest.raises(IpabsError) as info:
        sweep(sequential, {"fees.servicing.rate": [0.01], "tranches.sub.balance": ["20m", "40m"]})
    message = str(info.value)
    assert message.startswith(
        "--set tranches.sub.balance=20m,40m: 40m makes the deal invalid at point 2 of 2"
    ), message
    assert "collateral (100,000,000.00) is smaller than the notes (120,000,000.00)" in message


def test_values_invalid_only_together_are_named_together(sequential: Path) -> None:
    with pytest.raises(IpabsError) as info:
        sweep(sequential, {"tranches.senior.balance": ["85m"], "tranches.sub.balance": ["20m"]})
    assert str(info.value).startswith(
        "--set tranches.senior.balance=85m; --set tranches.sub.balance=20m: 85m with 20m make"
    )


def test_a_multiplier_too_high_names_the_setting(sequential: Path) -> None:
    # 20 x default_pd 10% fails validation; 7 x 10% passes it, but over 18 months 7 x 14.6% > 1
    with pytest.raises(IpabsError) as info:
        sweep(sequential, {"risk.pd_multiplier": [1, 20]}, paths=10)
    message = str(info.value)
    assert message.startswith("--set risk.pd_multiplier=1,20: 20 makes the deal invalid at point 2 of 2"), (
        message
    )
    assert "risk.pd_multiplier: pd_multiplier 20 x default_pd 0.1 = 2" in message
    with pytest.raises(IpabsError) as info:
        sweep(sequential, {"risk.pd_multiplier": [7]}, paths=10)
    message = str(info.value)
    assert message.startswith("--set risk.pd_multiplier=7: 7 makes the deal invalid at point 1 of 1"), message
    assert "'SME-00' (risk.default_pd: 7 x PD reaches 1.02" in message


@pytest.mark.parametrize(
    ("settings", "options", "match"),
    [
        ({}, {}, "at least one parameter"),
        ({"risk.correlation": []}, {"paths": 10}, "at least one value"),
        ({"risk.correlation": [0.1]}, {}, "Monte Carlo only"),
        ({"scenarios.stress.defaults.cdr": [0.1]}, {"paths": 10}, "does not use them"),
        ({"tranches.sub.balance": ["20m"]}, {"paths": 10, "scenario": "stress"}, "deterministic run"),
        (
            {"tranches.sub.balance": ["20m"]},
            {"scenario": "nope"},
            "no scenario 'nope'; known scenarios: base, stress",
        ),
        ({"tranches.sub.balance": ["20m"]}, {"risk": "x.yaml"}, "Monte Carlo only"),
        ({"tranches.sub.balance": [1], "tranches[1].balance": [2]}, {}, "address the same value"),
        ({"tranches.sub.balance": [1]}, {"paths": 0}, "at least 1"),
    ],
)
def test_bad_sweeps_are_user_errors(sequential: Path, settings: dict, options: dict, match: str) -> None:
    with pytest.raises(IpabsError, match=match):
        sweep(sequential, settings, **options)


def test_a_deal_without_risk_needs_one_for_the_monte_carlo() -> None:
    with pytest.raises(IpabsError, match="no `risk` section"):
        sweep(ROOT / "tests" / "deals" / "minimal.yaml", {"tranches.sub.balance": ["1.5m"]}, paths=10)


def test_progress_counts_points() -> None:
    stream = io.StringIO()
    sweep(
        ROOT / "tests" / "deals" / "minimal.yaml",
        {"tranches.sub.balance": ["1m", "1.5m"]},
        progress=True,
        progress_stream=stream,
    )
    # asked for on a stream that is no terminal: the finished bar, once, without colours
    assert re.fullmatch(r"sweep [━ ]+ 2/2 points 0:00:\d\d elapsed, 0:00:00 left\n", stream.getvalue())


# --------------------------------------------------------------------------- command line


def test_cli_text(sequential: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "sweep",
            str(sequential),
            "--set",
            "tranches.senior.balance=80m,70m",
            "--set",
            "risk.pd_multiplier=1,2",
            "--paths",
            "2000",
            "--seed",
            "1",
            "--threads",
            "2",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and err == ""  # no progress when not on a terminal
    lines = out.splitlines()
    assert lines[0].startswith(
        "Sequential test deal | sweep: 4 point(s), Monte Carlo 2,000 paths each, seed 1 at every point"
    )
    assert lines[2].split()[:4] == ["tranches.senior.balance", "risk.pd_multiplier", "tranche", "balance"]
    assert len(lines) == 4 + 8
    assert lines[4].split()[:4] == ["80,000,000", "1", "senior", "80,000,000.00"]


def test_cli_deterministic_text(sequential: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "sweep",
                str(sequential),
                "--set",
                "scenarios.stress.defaults.cdr=0.1,0.5",
                "--scenario",
                "stress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "sweep: 2 point(s), scenario: stress" in out
    assert "loss %" in out and "WAL (y)" in out


def test_cli_json_and_out(sequential: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sweep.csv"
    args = ["sweep", str(sequential), "--set", "risk.correlation=0.1,0.4", "--paths", "1000", "--seed", "7"]
    assert main([*args, "--json", "--out", str(target)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = json.loads(out)
    assert [(r["risk.correlation"], r["tranche"]) for r in rows] == [
        (0.1, "senior"),
        (0.1, "sub"),
        (0.4, "senior"),
        (0.4, "sub"),
    ]
    expected = sweep(sequential, {"risk.correlation": [0.1, 0.4]}, paths=1000, seed=7)
    assert [r["expected_loss"] for r in rows] == expected["expected_loss"].tolist()
    written = pd.read_csv(target)
    assert list(written.columns) == list(expected.columns)
    np.testing.assert_allclose(written["expected_loss"], expected["expected_loss"], rtol=1e-15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv"]  # no temporary file left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--set", "tranches.seniorr.balance=1"],
            "no element named 'seniorr' in tranches (did you mean 'senior'?)",
        ),
        (
            ["--set", "tranches.senior.balance=80m,-1"],
            "--set tranches.senior.balance=80m,-1: -1 makes the deal invalid",
        ),
        (["--set", "risk.correlation=0.2"], "give paths (--paths N)"),
        (["--set", "tranches.sub.balance=1m", "--seed", "3"], "--seed applies to the Monte Carlo"),
        (["--set", "tranches.sub.balance=1m", "--set", "tranches.sub.balance=2m"], "given twice"),
        (["--set", "tranches.sub.balance=1m", "--out", "table.txt"], "give a .csv"),
        (["--set", "tranches.sub.balance=1m", "--out", "no/such/dir/t.csv"], "does not exist"),
    ],
)
def test_cli_errors_exit_2(
    sequential: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["sweep", str(sequential), *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and "Traceback" not in err


def test_cli_malformed_setting_is_a_usage_error(sequential: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(sequential), "--set", "risk.correlation"])
    assert info.value.code == 2
    assert "PATH=V1,V2" in capsys.readouterr().err


def test_edit_deal_changes_a_copy_and_validates_it() -> None:
    deal = load_deal(CAOHEJING)
    edited = edit_deal(deal, {"tranches.senior.balance": "90m", "accounts.reserve.initial": "1m"})
    assert (edited.spec.tranches[0].balance, edited.spec.accounts[0].initial) == (90e6, 1e6)
    assert (deal.spec.tranches[0].balance, deal.spec.accounts[0].initial) == (95e6, 600e3)
    assert edit_deal(CAOHEJING, {"tranches.senior.balance": "90m"}).spec == edited.spec.model_copy(
        update={"accounts": deal.spec.accounts}
    )
    with pytest.raises(DealError) as info:
        edit_deal(deal, {"tranches.senior.balance": -1})
    assert [i.path for i in info.value.issues] == ["tranches[0].balance"]


# --------------------------------------------------------------------------- the documentation runs


def doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", (ROOT / "docs" / "sweep.md").read_text(encoding="utf-8"), re.S)


def test_documented_commands_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    commands = [
        line for block in doc_blocks("bash") for line in block.splitlines() if line.startswith("ipabs sweep ")
    ]
    assert len(commands) >= 4
    for line in commands:
        if "PATH=" in line:  # the synopsis
            continue
        args = shlex.split(line)[1:]
        args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]  # no files in the repository
        # fewer paths: the test checks the command, not the figures
        args = [
            str(min(int(a), 2000)) if prev == "--paths" else a
            for prev, a in zip(["", *args[:-1]], args, strict=True)
        ]
        assert main(args) == 0, line
    out = capsys.readouterr().out
    assert "tranches.senior.balance" in out


def test_documented_outputs_are_current(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The deterministic table in the documentation is what the command prints."""
    monkeypatch.chdir(ROOT)
    shown = next(block for block in doc_blocks("text") if "scenario: cdr_stress" in block)
    assert main(shlex.split(next(c for c in doc_blocks("bash") if "--scenario cdr_stress" in c))[1:]) == 0
    assert capsys.readouterr().out == shown


def test_documented_python_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    blocks = doc_blocks("python")
    assert len(blocks) == 2
    exec(compile(blocks[0].replace("paths=20_000", "paths=2_000"), "docs/sweep.md", "exec"), {})
    exec(compile(blocks[1], "docs/sweep.md", "exec"), {})
    out = capsys.readouterr().out
    assert "('tranches', 1, 'balance')" in out and "90000000.0" in out
