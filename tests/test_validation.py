"""Every mistake in a deal file is reported at file:line:column with its path, what was
expected and, for a misspelt name, a suggestion; nothing ends in a raw traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ipabs.deal.load import load_deal, parse_deal
from ipabs.errors import DealError, Issue

FILE = "deal.yaml"


def mutate(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` in ``text``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(DealError) as info:
        parse_deal(text, FILE)
    issues = info.value.issues
    assert issues, "a DealError without issues"
    return issues


# --------------------------------------------------------------------------- the fixture


def test_minimal_deal_loads(deals_dir: Path) -> None:
    deal = load_deal(deals_dir / "minimal.yaml")
    spec = deal.spec
    assert deal.name == "Minimal IP-pledge deal"
    assert [t.name for t in spec.tranches] == ["senior", "sub"]
    assert spec.tranches[0].balance == 9_500_000
    assert spec.tranches[0].coupon == pytest.approx(0.032)
    assert spec.pools[0].loans[0].pledged_ip.appraised_value == 15_000_000
    assert spec.pools[0].loans[1].rate.index == "LPR1Y"
    assert spec.support[0].provider == "StateGuarantor"
    assert list(spec.waterfalls) == ["normal", "accelerated"]
    assert spec.waterfalls["normal"][2].kind == "draw"
    assert spec.waterfalls["normal"][2].value.covers == ["senior.interest"]
    assert deal.source.locate(("tranches", 1, "balance")) == (39, 14)


# --------------------------------------------------------------------------- one mistake each


@dataclass(frozen=True)
class Case:
    """A string edit of the minimal deal and the one issue it must produce."""

    id: str
    old: str
    new: str
    line: int
    column: int
    path: str
    message: tuple[str, ...]
    hint: str = ""
    extra: dict[str, str] = field(default_factory=dict)


CASES = [
    # ---- unknown and misspelt keys
    Case(
        "misspelt top-level key",
        "\ntranches:\n",
        "\ntranchs:\n",
        34,
        1,
        "tranchs",
        ("unknown key 'tranchs'",),
        "did you mean 'tranches'?",
    ),
    Case(
        "misspelt key in the deal header",
        "  closing_date:",
        "  closing_dat:",
        3,
        3,
        "deal.closing_dat",
        ("unknown key 'closing_dat'",),
        "did you mean 'closing_date'?",
    ),
    Case(
        "misspelt key in a list item",
        "    balance: 1.5m",
        "    balanse: 1.5m",
        39,
        5,
        "tranches[1].balanse",
        ("unknown key 'balanse'",),
        "did you mean 'balance'?",
    ),
    Case(
        "misspelt key in a flow mapping",
        "{appraised_value: 12m}",
        "{appraisd_value: 12m}",
        27,
        22,
        "pools[0].loans[1].pledged_ip.appraisd_value",
        ("unknown key 'appraisd_value'",),
        "did you mean 'appraised_value'?",
    ),
    Case(
        "unknown key lists the allowed keys",
        "    provider: StateGuarantor",
        "    provider: StateGuarantor\n    cap: 1m",
        54,
        5,
        "support[0].cap",
        ("unknown key 'cap'",),
        "allowed keys: name, kind, provider, cap_per_period, cap_total, reimbursement_rate",
    ),
    Case(
        "misspelt trigger key",
        "    threshold: 10%",
        "    treshold: 10%",
        58,
        5,
        "triggers[0].treshold",
        ("unknown key 'treshold'",),
        "did you mean 'threshold'?",
    ),
    Case(
        "misspelt key of pay_principal",
        "{tranches: [senior, sub]}",
        "{tranches: [senior, sub], mod: pro_rata}",
        72,
        48,
        "waterfalls.accelerated[2].pay_principal.mod",
        ("unknown key 'mod'",),
        "did you mean 'mode'?",
    ),
    # ---- waterfall steps
    Case(
        "misspelt step kind",
        "    - fund_account: reserve",
        "    - fund_acount: reserve",
        66,
        7,
        "waterfalls.normal[3].fund_acount",
        ("unknown step kind 'fund_acount'",),
        "did you mean 'fund_account'?",
    ),
    Case(
        "step with two keys",
        "    - fund_account: reserve",
        "    - {fund_account: reserve, pay_fee: trustee}",
        66,
        7,
        "waterfalls.normal[3]",
        ("exactly one key", "pay_fee and fund_account", "split it into separate steps"),
    ),
    Case(
        "step written as a bare word",
        "    - pay_residual: sub\n  accelerated",
        "    - pay_residual\n  accelerated",
        68,
        7,
        "waterfalls.normal[5]",
        ("expected a mapping, got 'pay_residual'",),
        "write `pay_residual: ...`",
    ),
    Case(
        "step without a value",
        "    - fund_account: reserve",
        "    - fund_account:",
        66,
        20,
        "waterfalls.normal[3].fund_account",
        ("fund_account needs a value",),
    ),
    Case(
        "waterfall without steps",
        "  accelerated:\n    - pay_fee: trustee\n    - pay_interest: senior\n"
        "    - pay_principal: {tranches: [senior, sub]}\n    - pay_residual: sub\n",
        "  accelerated: []\n",
        69,
        16,
        "waterfalls.accelerated",
        ("waterfall 'accelerated' has no steps",),
    ),
    # ---- scalar values
    Case(
        "misspelt literal",
        "payment_frequency: quarterly",
        "payment_frequency: quartely",
        5,
        22,
        "deal.payment_frequency",
        ("expected one of 'monthly', 'quarterly', 'semi-annual', 'annual'", "got 'quartely'"),
        "did you mean 'quarterly'?",
    ),
    Case(
        "negative balance",
        "    balance: 1.5m",
        "    balance: -1.5m",
        39,
        14,
        "tranches[1].balance",
        ("must not be negative", "got '-1.5m'"),
    ),
    Case(
        "zero loan balance",
        "balance: 5m",
        "balance: 0",
        24,
        18,
        "pools[0].loans[1].balance",
        ("must be greater than 0", "got 0"),
    ),
    Case(
        "amount that is not a number",
        "initial: 200k",
        "initial: lots",
        47,
        14,
        "accounts[0].initial",
        ("'lots' is not an amount",),
    ),
    Case(
        "amount given as true/false",
        "initial: 200k",
        "initial: yes",
        47,
        14,
        "accounts[0].initial",
        ("must be a number, not true/false",),
    ),
    Case(
        "count below its minimum",
        "count: 3",
        "count: 0",
        22,
        43,
        "pools[0].loans[0].pledged_ip.count",
        ("must be at least 1", "got 0"),
    ),
    Case(
        "percent string that is not a number",
        "coupon: 3.2%",
        "coupon: abc%",
        37,
        13,
        "tranches[0].coupon",
        ("'abc%' is not a percentage like '3.5%'",),
    ),
    Case(
        "rate that is not a number",
        "coupon: 3.2%",
        "coupon: high",
        37,
        13,
        "tranches[0].coupon",
        ("'high' is not a rate", "0.035 or '3.5%'"),
    ),
    Case(
        "probability of 1",
        "pd: 0.5%",
        "pd: 1",
        13,
        9,
        "obligors[0].pd",
        ("must lie in [0, 1)", "got 1"),
    ),
    Case(
        "probability above 100%",
        "pd: 0.5%",
        "pd: 120%",
        13,
        9,
        "obligors[0].pd",
        ("must lie in [0, 1)", "got '120%'"),
    ),
    Case(
        "invalid name",
        "  - name: sub",
        "  - name: 1sub",
        38,
        11,
        "tranches[1].name",
        ("'1sub' is not a valid name", "start with a letter"),
    ),
    Case(
        "section of the wrong type",
        "fees:\n  - name: trustee\n    annual_amount: 50k",
        "fees: {name: trustee, annual_amount: 50k}",
        41,
        7,
        "fees",
        ("expected a list, got a mapping",),
    ),
    # ---- missing fields
    Case(
        "missing required field",
        "    balance: 1.5m\n",
        "",
        38,
        5,
        "tranches[1]",
        ("missing required field 'balance'",),
        "add `balance:` - Original principal balance.",
    ),
    Case(
        "missing header field",
        "  legal_final_date: 2027-01-15\n",
        "",
        2,
        3,
        "deal",
        ("missing required field 'legal_final_date'",),
        "add `legal_final_date:` - Legal final maturity of the notes.",
    ),
    Case(
        "trigger without effect",
        "    effect: {waterfall: accelerated}\n",
        "",
        56,
        5,
        "triggers[0]",
        ("missing required field 'effect'",),
        "add `effect:` - What happens while it is active.",
    ),
    Case(
        "support without kind",
        "    kind: deficiency_payment\n",
        "",
        51,
        5,
        "support[0]",
        ("missing required field 'kind'",),
        "add `kind:`, one of 'deficiency_payment', 'liquidity_facility', 'liquidity_support'",
    ),
    Case(
        "misspelt support kind",
        "kind: deficiency_payment",
        "kind: deficiency_paymnt",
        52,
        11,
        "support[0].kind",
        ("unknown kind 'deficiency_paymnt'", "'deficiency_payment', 'liquidity_facility'"),
        "did you mean 'deficiency_payment'?",
    ),
    Case(
        "two of a choice",
        "    annual_amount: 50k",
        "    annual_amount: 50k\n    period_amount: 10k",
        42,
        5,
        "fees[0]",
        ("give exactly one of annual_amount, period_amount or rate",),
    ),
    Case(
        "loan with maturity and term",
        "        term_months: 24",
        "        term_months: 24\n        maturity_date: 2026-01-01",
        23,
        9,
        "pools[0].loans[1]",
        ("give exactly one of maturity_date or term_months",),
    ),
    # ---- dates
    Case(
        "impossible date",
        "closing_date: 2024-01-15",
        "closing_date: 2024-13-15",
        3,
        17,
        "deal.closing_date",
        ("invalid date '2024-13-15'",),
        "write dates as YYYY-MM-DD",
    ),
    Case(
        "not a date",
        "legal_final_date: 2027-01-15",
        "legal_final_date: soon",
        6,
        21,
        "deal.legal_final_date",
        ("expected a date (YYYY-MM-DD), got 'soon'",),
    ),
    Case(
        "first payment before closing",
        "first_payment_date: 2024-04-15",
        "first_payment_date: 2024-01-01",
        4,
        23,
        "deal.first_payment_date",
        ("first_payment_date must be after closing_date",),
    ),
    Case(
        "legal final before first payment",
        "legal_final_date: 2027-01-15",
        "legal_final_date: 2024-03-01",
        6,
        21,
        "deal.legal_final_date",
        ("legal_final_date must not be before first_payment_date",),
    ),
    Case(
        "loan maturing after legal final",
        "maturity_date: 2026-01-15",
        "maturity_date: 2028-01-15",
        21,
        24,
        "pools[0].loans[0].maturity_date",
        ("matures after the legal final date",),
        "cash after legal final is not modelled: extend legal_final_date",
    ),
    Case(
        "loan maturing before closing",
        "maturity_date: 2026-01-15",
        "maturity_date: 2023-06-30",
        21,
        24,
        "pools[0].loans[0].maturity_date",
        ("matures on or before closing",),
    ),
    Case(
        "term running past legal final",
        "term_months: 24",
        "term_months: 48",
        26,
        22,
        "pools[0].loans[1].term_months",
        ("runs past the legal final date",),
    ),
    # ---- references across sections
    Case(
        "unknown tranche in pay_interest",
        "    - pay_interest: senior\n    - draw",
        "    - pay_interest: senor\n    - draw",
        64,
        21,
        "waterfalls.normal[1].pay_interest",
        ("unknown tranche 'senor'",),
        "did you mean 'senior'?",
    ),
    Case(
        "unknown tranche in pay_principal",
        "    - pay_principal: senior",
        "    - pay_principal: snior",
        67,
        22,
        "waterfalls.normal[4].pay_principal",
        ("unknown tranche 'snior'",),
        "did you mean 'senior'?",
    ),
    Case(
        "unknown tranche in a pay_principal list",
        "{tranches: [senior, sub]}",
        "{tranches: [senior, mezz]}",
        72,
        42,
        "waterfalls.accelerated[2].pay_principal.tranches[1]",
        ("unknown tranche 'mezz'",),
        "known tranches: senior, sub",
    ),
    Case(
        "unknown tranche in pay_residual",
        "    - pay_residual: sub\n  accelerated",
        "    - pay_residual: sbu\n  accelerated",
        68,
        21,
        "waterfalls.normal[5].pay_residual",
        ("unknown tranche 'sbu'",),
        "did you mean 'sub'?",
    ),
    Case(
        "unknown fee",
        "    - pay_fee: trustee\n    - pay_interest: senior\n    - draw",
        "    - pay_fee: trustees\n    - pay_interest: senior\n    - draw",
        63,
        16,
        "waterfalls.normal[0].pay_fee",
        ("unknown fee 'trustees'",),
        "did you mean 'trustee'?",
    ),
    Case(
        "unknown fee in a list",
        "  accelerated:\n    - pay_fee: trustee",
        "  accelerated:\n    - pay_fee: [trustee, servicer]",
        70,
        26,
        "waterfalls.accelerated[0].pay_fee[1]",
        ("unknown fee 'servicer'",),
        "known fees: trustee",
    ),
    Case(
        "unknown account in fund_account",
        "fund_account: reserve",
        "fund_account: reserv",
        66,
        21,
        "waterfalls.normal[3].fund_account",
        ("unknown account 'reserv'",),
        "did you mean 'reserve'?",
    ),
    Case(
        "unknown draw source",
        "from: guarantee",
        "from: guarantor",
        65,
        20,
        "waterfalls.normal[2].draw.from",
        ("unknown account or support 'guarantor'",),
        "did you mean 'guarantee'?",
    ),
    Case(
        "unknown claim in covers",
        "covers: [senior.interest]",
        "covers: [senior.intrest]",
        65,
        40,
        "waterfalls.normal[2].draw.covers[0]",
        ("unknown claim 'senior.intrest'",),
        "did you mean 'senior.interest'?",
    ),
    Case(
        "unknown waterfall in a trigger",
        "{waterfall: accelerated}",
        "{waterfall: acelerated}",
        59,
        25,
        "triggers[0].effect.waterfall",
        ("unknown waterfall 'acelerated'",),
        "did you mean 'accelerated'?",
    ),
    Case(
        "trigger with an empty effect",
        "{waterfall: accelerated}",
        "{}",
        59,
        13,
        "triggers[0].effect",
        ("the trigger has no effect",),
        "set sequential, trap, waterfall or end_revolving",
    ),
    Case(
        "unknown index",
        "index: LPR1Y",
        "index: LPR5Y",
        25,
        23,
        "pools[0].loans[1].rate.index",
        ("unknown index 'LPR5Y'",),
        "did you mean 'LPR1Y'?",
    ),
    Case(
        "unknown support provider",
        "provider: StateGuarantor",
        "provider: StateGuarant",
        53,
        15,
        "support[0].provider",
        ("unknown obligor 'StateGuarant'",),
        "did you mean 'StateGuarantor'?",
    ),
    Case(
        "unknown loan guarantor",
        "        term_months: 24\n",
        "        term_months: 24\n        guarantee: {guarantor: StateGuarantr}\n",
        27,
        32,
        "pools[0].loans[1].guarantee.guarantor",
        ("unknown obligor 'StateGuarantr'",),
        "did you mean 'StateGuarantor'?",
    ),
    Case(
        "duplicate tranche names",
        "    balance: 1.5m\n",
        "    balance: 1.5m\n  - name: sub\n    balance: 0\n",
        40,
        11,
        "tranches[2].name",
        ("duplicate name 'sub'",),
        "names must be unique",
    ),
    Case(
        "pool smaller than the notes",
        "balance: 9.5m",
        "balance: 10m",
        2,
        3,
        "deal",
        ("collateral (11,000,000.00) is smaller than the notes (11,500,000.00)",),
        "fix the balances, or say why in `collateral_shortfall_reason:` here",
    ),
    # ---- amounts with a union of forms
    Case(
        "misspelt key of a formula",
        "target: {share: 2%, of: balance(senior)}",
        "target: {shar: 2%, of: pool_balance}",
        48,
        14,
        "accounts[0].target.shar",
        ("unknown key 'shar'",),
        "did you mean 'share'?",
    ),
    Case(
        "misspelt key of a schedule",
        "target: {share: 2%, of: balance(senior)}",
        "target: {schedul: [1m, 2m]}",
        48,
        14,
        "accounts[0].target.schedul",
        ("unknown key 'schedul'",),
        "did you mean 'schedule'?",
    ),
    Case(
        "formula without `of`",
        "target: {share: 2%, of: balance(senior)}",
        "target: {share: 2%}",
        48,
        13,
        "accounts[0].target",
        ("missing required field 'of'",),
        "add `of:` - Quantity, e.g. pool_balance, balance(senior), next_interest(senior, 12) or "
        "trigger(NAME): see the list of quantities in docs/deal-language.md.",
    ),
    Case(
        "negative value in a schedule",
        "target: {share: 2%, of: balance(senior)}",
        "target: {schedule: [1m, -2]}",
        48,
        29,
        "accounts[0].target.schedule[1]",
        ("must not be negative", "got -2"),
    ),
    Case(
        "amount of no known form",
        "target: {share: 2%, of: balance(senior)}",
        "target: [1m, 2m]",
        48,
        13,
        "accounts[0].target",
        (
            "expected a number, a mapping {share, of, floor, cap} or a mapping {schedule}",
            "got a list",
        ),
    ),
    Case(
        "misspelt key of a floating rate",
        "spread: 1.5%",
        "sprad: 1.5%",
        25,
        30,
        "pools[0].loans[1].rate.sprad",
        ("unknown key 'sprad'",),
        "did you mean 'spread'?",
    ),
    Case(
        "misspelt key of an index curve",
        "LPR1Y: 3.45%",
        "LPR1Y: [{from: 2024-01-01, rat: 3%}]",
        9,
        30,
        "indices.LPR1Y[0].rat",
        ("unknown key 'rat'",),
        "did you mean 'rate'?",
    ),
    Case(
        "formula naming an unknown tranche",
        "of: balance(senior)",
        "of: balance(snior)",
        48,
        29,
        "accounts[0].target.of",
        ("unknown tranche 'snior'",),
        "did you mean 'senior'?",
    ),
    Case(
        "formula naming a non-tranche",
        "of: balance(senior)",
        "of: balance(nope)",
        48,
        29,
        "accounts[0].target.of",
        ("unknown tranche 'nope'",),
        "known tranches: senior, sub",
    ),
    Case(
        "misspelt quantity",
        "of: balance(senior)",
        "of: balanse(senior)",
        48,
        29,
        "accounts[0].target.of",
        ("'balanse(senior)' is not a quantity", "pool_balance"),
        "did you mean 'balance(senior)'?",
    ),
    Case(
        "unclosed quantity",
        "of: balance(senior)",
        "of: balance(senior",
        48,
        29,
        "accounts[0].target.of",
        ("'balance(senior' is not a quantity",),
        "write it as balance(TRANCHE) or balance(TRANCHE+TRANCHE)",
    ),
    Case(
        "misspelt fee base",
        "    annual_amount: 50k",
        "    rate: 0.1%\n    base: pool_balanse",
        44,
        11,
        "fees[0].base",
        ("'pool_balanse' is not a quantity",),
        "did you mean 'pool_balance'?",
    ),
    # ---- scenarios
    Case(
        "override naming pool and obligor",
        "    recovery: {rate: 30%, lag_months: 12}\n",
        "    recovery: {rate: 30%, lag_months: 12}\n    overrides:\n"
        "      - {pool: park, obligor: AlphaTech, recovery: {rate: 10%}}\n",
        34,
        9,
        "scenarios.base.overrides[0]",
        ("names exactly one of `pool` or `obligor`",),
    ),
    Case(
        "override naming an unknown pool",
        "    recovery: {rate: 30%, lag_months: 12}\n",
        "    recovery: {rate: 30%, lag_months: 12}\n    overrides:\n"
        "      - {pool: parc, recovery: {rate: 10%}}\n",
        34,
        16,
        "scenarios.base.overrides[0].pool",
        ("unknown pool 'parc'",),
        "did you mean 'park'?",
    ),
    Case(
        "unknown scenario obligor",
        "defaults: {cdr: 2%}",
        "defaults: {cdr: 2%, obligors: {GammaBio: 3}}",
        31,
        36,
        "scenarios.base.defaults.obligors.GammaBio",
        ("unknown obligor 'GammaBio'",),
        "known obligors: StateGuarantor, AlphaTech, BetaSoft",
    ),
    Case(
        "scenario default period of no known form",
        "defaults: {cdr: 2%}",
        "defaults: {cdr: 2%, obligors: {AlphaTech: soon}}",
        31,
        47,
        "scenarios.base.defaults.obligors.AlphaTech",
        ("expected a whole number or a date (YYYY-MM-DD), got 'soon'",),
    ),
    Case(
        "two default curves",
        "defaults: {cdr: 2%}",
        "defaults: {cdr: 2%, sda: 100}",
        31,
        15,
        "scenarios.base.defaults",
        ("give one of cdr, cdr_vector or sda, not cdr and sda",),
    ),
    # ---- YAML itself
    Case(
        "duplicate YAML key",
        "    coupon: 3.2%\n",
        "    coupon: 3.2%\n    coupon: 3%\n",
        38,
        5,
        "tranches[0].coupon",
        ("duplicate key 'coupon' (first at line 37)",),
        "each key may appear once in a mapping; remove or rename one",
    ),
    Case(
        "YAML syntax error",
        "    coupon: 3.2%\n",
        "    coupon: [3.2%\n",
        38,
        9,
        "",
        ("YAML syntax error", "expected ',' or ']'"),
        "while parsing a flow sequence at line 37, column 13; "
        "check indentation and quoting near this position",
    ),
    Case(
        "tab indentation",
        "    coupon: 3.2%\n",
        "\tcoupon: 3.2%\n",
        37,
        1,
        "",
        ("YAML syntax error", "cannot start any token"),
        "indent with spaces, not tabs",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_mistake_one_located_issue(minimal_text: str, case: Case) -> None:
    issues = issues_of(mutate(minimal_text, case.old, case.new))
    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert (issue.file, issue.line, issue.column) == (FILE, case.line, case.column), str(issue)
    assert issue.path == case.path, str(issue)
    for part in case.message:
        assert part in issue.message, str(issue)
    if case.hint:
        assert issue.hint == case.hint, str(issue)
    assert "Input should be" not in issue.message
    assert "valid number" not in issue.message
    # the rendered form carries all of it
    text = str(issue)
    assert text.startswith(f"{FILE}:{case.line}:{case.column}: ")
    if case.path:
        assert f": {case.path}: " in text


def test_stating_a_shortfall_reason_accepts_a_small_pool(minimal_text: str) -> None:
    text = mutate(minimal_text, "balance: 9.5m", "balance: 10m")
    text = mutate(
        text,
        "  legal_final_date: 2027-01-15\n",
        "  legal_final_date: 2027-01-15\n"
        "  collateral_shortfall_reason: reserve funded at closing covers the gap\n",
    )
    deal = parse_deal(text, FILE)
    assert deal.spec.deal.collateral_shortfall_reason.startswith("reserve funded")


def test_misspelt_required_key_is_not_also_reported_missing(minimal_text: str) -> None:
    issues = issues_of(mutate(minimal_text, "    balance: 1.5m", "    balanse: 1.5m"))
    assert [i.message for i in issues] == ["unknown key 'balanse'"]


def test_a_mapping_is_never_reported_as_not_a_number(minimal_text: str) -> None:
    text = mutate(
        minimal_text,
        "target: {share: 2%, of: balance(senior)}",
        "target: {shar: 2%, of: pool_balance}",
    )
    rendered = "\n".join(map(str, issues_of(text)))
    assert "number" not in rendered
    assert "Formula" not in rendered and "Schedule" not in rendered


# --------------------------------------------------------------------------- accepted forms


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("3.5%", 0.035),
        ('"3.5%"', 0.035),
        ("0.035", 0.035),
        ("3.5e-2", 0.035),
        ("-0.5%", -0.005),
        ("'1_0%'", 0.10),
    ],
)
def test_percent_strings_are_accepted(minimal_text: str, written: str, value: float) -> None:
    # a loan rate, which may be negative (a note coupon may not: notes pay no negative interest)
    deal = parse_deal(mutate(minimal_text, "rate: 5.5%", f"rate: {written}"), FILE)
    assert deal.spec.pools[0].loans[0].rate == pytest.approx(value)


@pytest.mark.parametrize("written", ["abc%", "3.5%%", "'%'", "'3,5%'"])
def test_malformed_percent_strings_are_rejected(minimal_text: str, written: str) -> None:
    issues = issues_of(mutate(minimal_text, "coupon: 3.2%", f"coupon: {written}"))
    assert len(issues) == 1
    assert (issues[0].line, issues[0].column, issues[0].path) == (37, 13, "tranches[0].coupon")
    assert "is not a percentage like '3.5%'" in issues[0].message


# --------------------------------------------------------------------------- whole files


def test_all_schema_issues_are_reported_together_in_line_order(minimal_text: str) -> None:
    text = mutate(minimal_text, "    - fund_account: reserve", "    - fund_acount: reserve")
    text = mutate(text, "    balance: 1.5m", "    balanse: 1.5m")
    text = mutate(text, "payment_frequency: quarterly", "payment_frequency: quartely")
    text = mutate(text, "pd: 0.5%", "pd: 2")
    issues = issues_of(text)
    assert [(i.line, i.path) for i in issues] == [
        (5, "deal.payment_frequency"),
        (13, "obligors[0].pd"),
        (39, "tranches[1].balanse"),
        (66, "waterfalls.normal[3].fund_acount"),
    ]


def test_all_cross_section_issues_are_reported_together_in_line_order(minimal_text: str) -> None:
    text = mutate(minimal_text, "fund_account: reserve", "fund_account: reserv")
    text = mutate(text, "index: LPR1Y", "index: LPR5Y")
    text = mutate(text, "provider: StateGuarantor", "provider: Nobody")
    text = mutate(text, "maturity_date: 2026-01-15", "maturity_date: 2028-01-15")
    issues = issues_of(text)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (21, 24, "pools[0].loans[0].maturity_date"),
        (25, 23, "pools[0].loans[1].rate.index"),
        (53, 15, "support[0].provider"),
        (66, 21, "waterfalls.normal[3].fund_account"),
    ]
    assert "DealError" not in str(DealError(issues))
    assert str(DealError(issues)).count("\n") == 3


def test_all_yaml_issues_are_reported_together(minimal_text: str) -> None:
    text = mutate(minimal_text, "closing_date: 2024-01-15", "closing_date: 2024-02-30")
    text = mutate(text, "    coupon: 3.2%\n", "    coupon: 3.2%\n    coupon: 3%\n")
    issues = issues_of(text)
    assert [(i.line, i.column) for i in issues] == [(3, 17), (38, 5)]


def test_non_mapping_file(minimal_text: str) -> None:
    issues = issues_of("- deal\n- pools\n")
    assert len(issues) == 1
    assert (issues[0].line, issues[0].column) == (1, 1)
    assert "must be a mapping of sections" in issues[0].message
    assert "deal:" in issues[0].hint


def test_empty_file_names_the_missing_sections() -> None:
    issues = issues_of("")
    assert {i.message for i in issues} == {
        f"missing required field {name!r}" for name in ("deal", "pools", "tranches", "waterfalls")
    }


def test_multiple_yaml_documents() -> None:
    issues = issues_of("deal: {}\n---\npools: []\n")
    assert issues[0].line == 2
    assert "YAML syntax error" in issues[0].message


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DealError) as info:
        load_deal(missing)
    (issue,) = info.value.issues
    assert issue.file == str(missing)
    assert issue.message == "file not found"
    assert str(issue).startswith(f"{missing}: file not found (check the path")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(DealError) as info:
        load_deal(tmp_path)
    assert "directory" in info.value.issues[0].message


def test_file_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("deal: {name: caf\xe9}\n".encode("latin-1"))
    with pytest.raises(DealError) as info:
        load_deal(bad)
    assert "UTF-8" in info.value.issues[0].message


def test_load_deal_locates_issues_in_the_named_file(tmp_path: Path, minimal_text: str) -> None:
    path = tmp_path / "deal.yaml"
    path.write_text(mutate(minimal_text, "index: LPR1Y", "index: LPR5Y"), encoding="utf-8")
    with pytest.raises(DealError) as info:
        load_deal(path)
    assert str(info.value).startswith(f"{path}:25:23: pools[0].loans[1].rate.index: ")


# --------------------------------------------------------------------------- no tracebacks

GARBAGE = ["", "-1", "abc%", "[]", "{}", "2024-13-01", "null", "[x, {y: 1}]", "true", "1e999"]


def _fuzz(minimal_text: str) -> list[str]:
    lines = minimal_text.splitlines(keepends=True)
    texts = []
    for n, line in enumerate(lines):
        texts.append("".join(lines[:n] + lines[n + 1 :]))  # drop the line
        if ":" in line:
            head = line.split(":", 1)[0]
            for g in GARBAGE:
                texts.append("".join([*lines[:n], f"{head}: {g}\n", *lines[n + 1 :]]))
    return texts


def test_no_mutation_ends_in_a_traceback(minimal_text: str) -> None:
    for text in _fuzz(minimal_text):
        try:
            parse_deal(text, FILE)
        except DealError as exc:
            for issue in exc.issues:
                assert issue.file == FILE
                assert issue.line >= 1 and issue.column >= 1, str(issue)
                assert issue.message, str(issue)
                assert "Input should be" not in issue.message, str(issue)


def test_translation_falls_back_to_located_issues(minimal_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if the translation meets a schema shape it does not know, errors stay located."""
    import ipabs.deal.validate as validate

    def broken(*args: object) -> None:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(validate, "_translate", broken)
    (issue,) = issues_of(mutate(minimal_text, "    balance: 1.5m", "    balance: -1.5m"))
    assert (issue.line, issue.column, issue.path) == (39, 14, "tranches[1].balance")
    assert "must not be negative" in issue.message
