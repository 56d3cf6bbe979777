"""IP valuation (`ipabs value`) and the per-asset value volatility it feeds to the Monte Carlo.

Closed forms are computed here independently of :mod:`ipabs.collateral.valuation`: annuity
and growing-annuity formulas, the second moment of a sum of lognormals by a numpy simulation,
and the Monte Carlo's mean recovery by scipy quadrature over the lognormal value factor."""

from __future__ import annotations

import datetime as dt
import json
import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import compile_text
from scipy import integrate, stats

from ipabs.cli import main
from ipabs.collateral.valuation import value_asset, value_file
from ipabs.deal.risk import RiskModel
from ipabs.deal.schema import PledgedIP
from ipabs.deal.valuation import IPValuationFile, load_ip_valuation
from ipabs.errors import DealError, IpabsError
from ipabs.montecarlo import simulate
from ipabs.risk.montecarlo_numba_fns import P_DEFAULT_RATE, P_LOSS_RATE

K_SE = 4.0

# --------------------------------------------------------------------------- Monte Carlo feed


def _one_loan(pledged_ip: str) -> str:
    return (
        "deal:\n  name: one loan\n  closing_date: 2025-01-01\n  first_payment_date: 2026-01-01\n"
        "  payment_frequency: annual\n  legal_final_date: 2026-01-01\n"
        "pools:\n  - name: pool\n    loans:\n"
        "      - {obligor: One, balance: 1m, rate: 0, term_months: 12, amortisation: bullet, "
        f"payment_frequency: annual, pledged_ip: {pledged_ip}}}\n"
        "tranches:\n  - name: notes\n    balance: 1000000\n"
        "waterfalls:\n  normal:\n    - pay_principal: notes\n    - pay_residual: notes\n"
    )


def _recoveries(text: str, recovery: dict[str, object], paths: int = 20_000) -> np.ndarray:
    """Recovered amount on each path where the 1m loan (pd 50%) defaulted."""
    risk = RiskModel.model_validate({"default_pd": 0.5, "recovery": {**recovery, "lag_months": 0}})
    result = simulate(compile_text(text), paths=paths, seed=23, threads=2, risk=risk)
    pool = result.pool_outcomes
    hit = pool[:, P_DEFAULT_RATE] > 0
    return (pool[hit, P_DEFAULT_RATE] - pool[hit, P_LOSS_RATE]) * 1e6


def _expected_recovery(appraisal: float, exposure: float, mean: float, sigma: float, cost: float) -> float:
    """E[min(exposure, max(appraisal x (V - cost), 0))], V lognormal of mean ``mean`` and sd of
    log ``sigma``, by quadrature over the standard normal."""
    mu = math.log(mean) - 0.5 * sigma * sigma

    def f(x: float) -> float:
        v = math.exp(mu + sigma * x)
        return min(exposure, max(appraisal * (v - cost), 0.0)) * stats.norm.pdf(x)

    value, _ = integrate.quad(f, -12.0, 12.0, limit=200, points=[0.0])
    return value


def test_asset_value_volatility_sets_its_own_lognormal_dispersion() -> None:
    # appraisal 2.5m against a 1m exposure: both the cap and the disposal cost bind on some paths
    spec = {"model": "lognormal", "value_mean": 0.4, "value_dispersion": 0.3, "disposal_cost": 0.05}
    own = _recoveries(_one_loan("{appraised_value: 2.5m, value_volatility: 0.9}"), spec)
    mean, se = float(own.mean()), float(own.std(ddof=1) / math.sqrt(len(own)))
    want = _expected_recovery(2.5e6, 1e6, 0.4, 0.9, 0.05)
    assert abs(mean - want) <= K_SE * se, (mean, want, se)
    # the model's own dispersion gives a clearly different mean: the asset's volatility was used
    other = _expected_recovery(2.5e6, 1e6, 0.4, 0.3, 0.05)
    assert abs(other - want) > 10 * K_SE * se
    # and an asset without its own volatility still draws from the model's
    plain = _recoveries(_one_loan("{appraised_value: 2.5m}"), spec)
    assert abs(float(plain.mean()) - other) <= K_SE * float(plain.std(ddof=1) / math.sqrt(len(plain)))


def test_asset_value_volatility_under_beta_keeps_the_coefficient_of_variation() -> None:
    spec = {"model": "beta", "value_mean": 0.4, "value_dispersion": 0.1}
    appraisal = 10_000.0  # far below the exposure: never capped
    rec = _recoveries(_one_loan(f"{{appraised_value: {appraisal:.0f}, value_volatility: 0.5}}"), spec)
    sd_want = 0.4 * math.sqrt(math.expm1(0.25)) * appraisal
    n = len(rec)
    assert abs(float(rec.mean()) - 0.4 * appraisal) <= K_SE * sd_want / math.sqrt(n)
    assert abs(float(rec.std(ddof=1)) - sd_want) <= K_SE * sd_want / math.sqrt(n)  # sd's se < sd/sqrt(n)


def test_infeasible_beta_volatility_is_refused() -> None:
    spec = {"model": "beta", "value_mean": 0.4, "value_dispersion": 0.1}
    with pytest.raises(IpabsError, match="value_volatility"):
        _recoveries(_one_loan("{appraised_value: 10000, value_volatility: 2.0}"), spec, paths=10)


# --------------------------------------------------------------------------- valuation

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "scenarios" / "ip_valuation" / "caohejing_ip.yaml"
EVENTS = ROOT / "scenarios" / "ip_valuation" / "caohejing_events.yaml"
DEAL = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"


def _spec(asset: dict[str, object], **settings: object) -> IPValuationFile:
    """A one-asset file: discount rate 10% (risk-free only), no tax unless given."""
    base = {
        "valuation_date": "2025-01-01",
        "discount_rate": {"risk_free": 0.10},
        "mid_year": False,
        **settings,
    }
    a = {"id": "a", "kind": "trademark", "royalty_rate": 0.1, **asset}
    return IPValuationFile.model_validate({"valuation": base, "assets": [a]})


def _value(asset: dict[str, object], **settings: object) -> float:
    spec = _spec(asset, **settings)
    return value_asset(spec.assets[0], spec.valuation).value


def test_level_royalty_is_an_annuity() -> None:
    r, n, rev, k, tax = 0.10, 7, 1000.0, 0.1, 0.25
    annuity = (1.0 - (1.0 + r) ** -n) / r  # ordinary annuity, payments at year ends
    want = rev * k * (1.0 - tax) * annuity
    assert _value({"revenue": [rev] * n}, tax_rate=tax) == pytest.approx(want, rel=1e-12)
    # mid-year convention: every payment half a year earlier
    assert _value({"revenue": [rev] * n}, tax_rate=tax, mid_year=True) == pytest.approx(
        want * (1.0 + r) ** 0.5, rel=1e-12
    )


def test_growing_revenue_is_a_growing_annuity() -> None:
    r, g, n, base = 0.10, 0.04, 12, 500.0
    want = base * 0.1 * (1.0 - ((1.0 + g) / (1.0 + r)) ** n) / (r - g)
    assert _value({"revenue": {"base": base, "growth": g, "years": n}}) == pytest.approx(want, rel=1e-12)


def test_excess_earnings_is_the_after_tax_margin_less_the_charges() -> None:
    r, n, rev, tax = 0.10, 5, 1000.0, 0.2
    asset = {
        "method": "excess_earnings",
        "royalty_rate": None,
        "revenue": [rev] * n,
        "operating_margin": 0.3,
        "contributory_charges": [{"name": "wc", "rate": 0.02}, {"name": "fa", "rate": 0.03}],
    }
    want = rev * (0.3 * (1.0 - tax) - 0.05) * (1.0 - (1.0 + r) ** -n) / r
    assert _value(asset, tax_rate=tax) == pytest.approx(want, rel=1e-12)


def test_expiry_cuts_the_cash_exactly_at_the_expiry_date() -> None:
    r, rev = 0.10, 1000.0
    days = 912  # 2.4986 years after 2025-01-01: two full years and a part
    life = days / 365.0
    expiry = (dt.date(2025, 1, 1) + dt.timedelta(days=days)).isoformat()
    asset = {"kind": "patent", "revenue": [rev] * 5, "expiry_date": expiry}
    a = 100.0  # yearly royalty
    part = life - 2.0
    mid = a / 1.1**0.5 + a / 1.1**1.5 + a * part / (1.0 + r) ** (2.0 + part / 2.0)
    assert _value(asset, mid_year=True) == pytest.approx(mid, rel=1e-12)
    end = a / 1.1 + a / 1.1**2 + a * part / (1.0 + r) ** life
    assert _value(asset) == pytest.approx(end, rel=1e-12)
    # a day more of legal life: a day more of royalty in the last part, paid a day later
    later = (dt.date(2025, 1, 1) + dt.timedelta(days=days + 1)).isoformat()
    day = 1.0 / 365.0
    longer = a / 1.1 + a / 1.1**2 + a * (part + day) / (1.0 + r) ** (life + day)
    assert _value({**asset, "expiry_date": later}) == pytest.approx(longer, rel=1e-12)
    # a renewable trademark's registration term does not stop the cash
    renewable = {"kind": "trademark", "revenue": [rev] * 5, "expiry_date": expiry, "renewable": True}
    assert _value(renewable) == pytest.approx(a * (1.0 - 1.1**-5) / 0.1, rel=1e-12)


def test_revaluation_counts_the_cash_after_the_date_from_that_date() -> None:
    spec = _spec({"revenue": [1000.0] * 4})
    v = value_asset(spec.assets[0], spec.valuation, dt.date(2026, 1, 1)).value  # 365 days: one year later
    assert v == pytest.approx(100.0 * (1.0 - 1.1**-3) / 0.1, rel=1e-12)


def test_invalidated_is_worth_nothing() -> None:
    assert _value({"revenue": [1000.0] * 5, "legal_status": "invalidated"}) == 0.0
    spec = IPValuationFile.model_validate(
        {
            "valuation": {"valuation_date": "2025-01-01", "discount_rate": {"risk_free": 0.1}},
            "assets": [
                {"id": "p", "revenue": [1000.0] * 5, "royalty_rate": 0.1, "expiry_date": "2034-01-01"}
            ],
            "events": [{"date": "2025-06-30", "asset": "p", "kind": "patent_invalidated"}],
        }
    )
    before = value_file(spec, dt.date(2025, 6, 29))[0]
    after = value_file(spec, dt.date(2025, 6, 30))[0]
    assert before.value > 0.0 and before.legal_status == "clear"
    assert after.value == 0.0 and after.value_sd == 0.0 and after.legal_status == "invalidated"


def test_each_factor_moves_the_value_the_right_way() -> None:
    base = {
        "kind": "patent",
        "revenue": {"base": 1000.0, "growth": 0.05, "years": 10},
        "expiry_date": "2033-06-30",
    }
    trl = [_value({**base, "trl": t}) for t in range(1, 10)]
    assert all(b > a for a, b in pairwise(trl))
    legal = [
        _value({**base, "legal_status": s}) for s in ("clear", "challenged", "in_litigation", "invalidated")
    ]
    assert all(b < a for a, b in pairwise(legal)) and legal[-1] == 0.0
    market = [_value({**base, "market": m}) for m in ("strong", "stable", "weak", "declining")]
    assert all(b < a for a, b in pairwise(market))
    expiry = [_value({**base, "expiry_date": d}) for d in ("2027-01-01", "2030-01-01", "2033-01-01")]
    assert all(b > a for a, b in pairwise(expiry))
    royalty = [_value({**base, "royalty_rate": k}) for k in (0.02, 0.05, 0.08)]
    assert all(b > a for a, b in pairwise(royalty))
    premium = [_value({**base, "extra_premium": p}) for p in (0.0, 0.02, 0.05)]
    assert all(b < a for a, b in pairwise(premium))
    tab = _value(base, tax_rate=0.25, tax_amortisation={"years": 10})
    assert tab > _value(base, tax_rate=0.25)
    # revenue volatility moves the volatility, not the value
    vols = []
    for s in (0.0, 0.2, 0.5):
        spec = _spec({**base, "revenue_volatility": s})
        v = value_asset(spec.assets[0], spec.valuation)
        vols.append(v.value_volatility)
        assert v.value == pytest.approx(_value(base), rel=1e-12)
    assert vols[0] == 0.0 and vols[1] > 0.0 and vols[2] > vols[1]


def test_effects_are_value_with_minus_value_without() -> None:
    asset = {"kind": "patent", "revenue": [1000.0] * 8, "expiry_date": "2030-07-01", "trl": 5}
    asset |= {"legal_status": "challenged", "market": "weak"}
    spec = _spec(asset)
    v = value_asset(spec.assets[0], spec.valuation)
    assert v.effects["trl"] == pytest.approx(v.value - _value({**asset, "trl": None}), rel=1e-12)
    assert v.effects["legal"] == pytest.approx(
        v.value - _value({**asset, "legal_status": "clear"}), rel=1e-12
    )
    assert v.effects["market"] == pytest.approx(v.value - _value({**asset, "market": "stable"}), rel=1e-12)
    assert v.effects["expiry"] == pytest.approx(
        v.value - _value({**asset, "expiry_date": "2040-01-01"}), rel=1e-12
    )
    assert v.effects["tax_amortisation"] == 0.0 and v.effects["licence"] == 0.0
    assert v.build_up == {"risk_free": 0.1, "market": 0.03, "asset": 0.0}


def test_tab_makes_the_value_include_the_tax_saved_by_amortising_it() -> None:
    # definition: V = V0 + sum_k tax x V / n x discount factor of year k (mid-year)
    r, tax, n = 0.1, 0.25, 8
    v0 = _value({"revenue": [1000.0] * 6}, tax_rate=tax, mid_year=True)
    v = _value({"revenue": [1000.0] * 6}, tax_rate=tax, mid_year=True, tax_amortisation={"years": n})
    savings = sum(tax * v / n / (1.0 + r) ** (k - 0.5) for k in range(1, n + 1))
    assert v == pytest.approx(v0 + savings, rel=1e-12)


def test_no_volatility_without_revenue_volatility_or_binary_risk() -> None:
    spec = _spec({"kind": "patent", "revenue": [1000.0] * 6, "expiry_date": "2029-01-01", "trl": 9})
    v = value_asset(spec.assets[0], spec.valuation)
    assert v.value > 0.0 and v.value_sd == 0.0 and v.value_volatility == 0.0


def test_volatility_matches_a_simulation() -> None:
    # level royalty 100 a year for 5 years at 10% (mid-year), revenue volatility 40%, success 60%,
    # a challenged right (survives with 75%): simulated from scratch with numpy
    sigma, q = 0.4, 0.6 * 0.75
    asset = {"revenue": [1000.0] * 5, "revenue_volatility": sigma, "success_probability": 0.6}
    spec = _spec({**asset, "legal_status": "challenged"}, mid_year=True)
    v = value_asset(spec.assets[0], spec.valuation)
    rng = np.random.default_rng(20261203)
    n = 400_000
    times = np.arange(5) + 0.5
    steps = np.diff(np.concatenate([[0.0], times]))
    w = np.cumsum(rng.standard_normal((n, 5)) * np.sqrt(steps), axis=1)
    shocks = np.exp(sigma * w - 0.5 * sigma**2 * times)
    pv = (100.0 * shocks / 1.1**times).sum(axis=1) * (rng.random(n) < q)
    mean, var = pv.mean(), pv.var(ddof=1)
    assert abs(v.value - mean) <= K_SE * pv.std(ddof=1) / math.sqrt(n)
    var_se = math.sqrt(((pv - mean) ** 4).mean() - var**2) / math.sqrt(n)
    assert abs(v.value_sd**2 - var) <= K_SE * var_se, (v.value_sd**2, var, var_se)
    assert v.value_volatility == pytest.approx(math.sqrt(math.log1p(v.value_sd**2 / v.value**2)), rel=1e-12)


# --------------------------------------------------------------------------- files and command


def _write(tmp_path: Path, text: str, name: str = "ip.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """valuation:
  valuation_date: 2025-01-01
  discount_rate: {risk_free: 2%, premia: {equity: 8%}}
assets:
  - id: p1
    loan: L1
    revenue: {base: 10m, growth: 5%, years: 8}
    royalty_rate: 4%
    expiry_date: 2031-06-30
    revenue_volatility: 30%
"""


def test_errors_are_located(tmp_path: Path) -> None:
    bad = GOOD.replace("    royalty_rate: 4%\n", "")
    with pytest.raises(DealError) as exc:
        load_ip_valuation(_write(tmp_path, bad))
    (issue,) = exc.value.issues
    assert issue.line == 5 and issue.path.startswith("assets[0]") and "royalty_rate" in issue.message
    bad = GOOD.replace("trl", "x").replace("revenue_volatility: 30%", "trl: 12")
    with pytest.raises(DealError) as exc:
        load_ip_valuation(_write(tmp_path, bad))
    (issue,) = exc.value.issues
    assert (issue.line, issue.column, issue.path) == (10, 10, "assets[0].trl")
    bad = GOOD.replace("  discount_rate:", "  legal_survival: {invalidated: 0.2}\n  discount_rate:")
    with pytest.raises(DealError) as exc:
        load_ip_valuation(_write(tmp_path, bad))
    (issue,) = exc.value.issues
    assert issue.path == "valuation.legal_survival" and "invalidated" in issue.message
    events = GOOD + "events:\n  - {date: 2025-02-01, asset: p9, kind: patent_invalidated}\n"
    with pytest.raises(DealError) as exc:
        load_ip_valuation(_write(tmp_path, events))
    (issue,) = exc.value.issues
    assert (issue.line, issue.path) == (12, "events[0].asset") and "p9" in issue.message


def test_command_exits_2_on_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, GOOD.replace("royalty_rate: 4%", "royalty_rate: lots"))
    assert main(["value", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:8:19: assets[0].royalty_rate" in err and "Traceback" not in err
    assert main(["value", str(_write(tmp_path, GOOD)), "--as-of", "2024-01-01"]) == 2
    assert "before the valuation date" in capsys.readouterr().err
    # a loan the deal does not have, located in the valuation file
    assert main(["value", str(_write(tmp_path, GOOD)), "--deal", str(DEAL)]) == 2
    assert (
        f"{tmp_path / 'ip.yaml'}:6:11: assets[0].loan: the deal has no loan or obligor 'L1'"
        in capsys.readouterr().err
    )


def test_command_writes_what_the_deal_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["value", str(EXAMPLE), "--deal", str(DEAL), "--out", str(out), "--json"]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    loans = pd.read_csv(out / "loans.csv")
    assert list(loans.columns) == ["loan_id", "appraised_value", "value_volatility"]
    # obligor names resolved to the deal's loan ids; the two Huazhi assets add up on one loan
    assert loans["loan_id"].iloc[0] == "Caohejing-Xinwei-Semicon-01" and len(loans) == 9
    huazhi = [a["value"] for a in doc["assets"] if a["loan"] == "Caohejing-Huazhi-AI-05"]
    assert len(huazhi) == 2
    assert loans.set_index("loan_id").loc["Caohejing-Huazhi-AI-05", "appraised_value"] == pytest.approx(
        sum(huazhi)
    )
    entries = yaml.safe_load((out / "pledged_ip.yaml").read_text(encoding="utf-8"))["loans"]
    for e in entries:
        PledgedIP.model_validate(e["pledged_ip"])
    assert {e["pledged_ip"]["kind"] for e in entries} >= {"patent", "software", "mixed"}
    assert doc["totals"]["value"] == pytest.approx(sum(a["value"] for a in doc["assets"]))
    for name in ("assets.csv", "flows.csv", "valuation.json"):
        assert (out / name).exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_shipped_example_revalues_after_its_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["value", str(EXAMPLE)]) == 0
    text = capsys.readouterr().out
    assert "discount rate build-up" in text and "effect of each factor" in text
    assert main(["value", str(EXAMPLE), "--as-of", "2025-12-31", "--events", str(EVENTS), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_id = {a["id"]: a for a in doc["assets"]}
    assert by_id["lvneng-bms-patents"]["value"] == 0.0
    assert by_id["guangxin-photonics-patents"]["legal_status"] == "clear"
    assert by_id["xincai-materials-patents"]["legal_status"] == "challenged"
    assert by_id["shengwu-reagent-patents"]["revenue_kept"] == pytest.approx(0.6)


def test_docs_list_every_field_and_their_example_validates() -> None:
    import re

    from ipabs.deal.valuation import Event, IPAsset, ValuationSettings

    text = (ROOT / "docs" / "ip-valuation.md").read_text(encoding="utf-8")
    for model in (ValuationSettings, IPAsset, Event):
        missing = [name for name in model.model_fields if f"| `{name}` |" not in text]
        assert not missing, f"{model.__name__}: undocumented fields {missing}"
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    spec = IPValuationFile.model_validate(yaml.safe_load(block.group(1)))
    assert spec.assets[0].id == "xinwei-chip-patents"


def test_infeasible_beta_volatility_is_located_in_the_deal() -> None:
    from ipabs.deal.load import parse_deal

    text = _one_loan("{appraised_value: 10000, value_volatility: 2.0}")
    text += "risk:\n  default_pd: 0.5\n  recovery: {model: beta, value_mean: 0.4, value_dispersion: 0.1}\n"
    with pytest.raises(DealError) as exc:
        parse_deal(text, "deal.yaml")
    (issue,) = exc.value.issues
    assert issue.path == "pools[0].loans[0].pledged_ip.value_volatility"
    line = text.splitlines().index(next(x for x in text.splitlines() if "2.0}" in x)) + 1
    column = text.splitlines()[line - 1].index("2.0}") + 1
    assert (issue.line, issue.column) == (line, column) and "(0, 0.4899)" in issue.message
    parse_deal(text.replace("value_volatility: 2.0", "value_volatility: 0.5"), "deal.yaml")  # feasible
