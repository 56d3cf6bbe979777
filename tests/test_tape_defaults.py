"""A tape's ``defaults`` mean what the same value written on every loan means.

For every field a tape supports, the field's column is dropped from a tape and its value given
once under ``defaults``; the deal must produce the same cash flows, to the cent, as the same
loans written out under ``loans:`` in the deal file, and the same tape frame as the tape with
the column. Every value differs from the built-in default, and the scenario (defaults, a
guarantee with a lag, recoveries on the appraised value, a floating rate at its floor) makes
each field move the cash flows, so a default that is ignored shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import CENT, assert_cents

from ipabs import api
from ipabs.deal.load import parse_deal
from ipabs.deal.tape import TAPE_FIELDS
from ipabs.engine.compile import compile_deal

# Two loans: L1 fixed-rate with a maturity date, L2 floating (at its 5% floor: 3.1% + 1.5%)
# with a term. Fields other than the rate and term pairs hold the same value in both rows, so
# that one `defaults` value can stand for the column.
ROWS: list[dict[str, Any]] = [
    {
        "id": "L1",
        "rate": "5.5%",
        "index": "",
        "spread": "",
        "rate_floor": "",
        "maturity_date": "2026-07-15",
        "term_months": "",
        "age_months": "6",
        "origination_date": "",
    },
    {
        "id": "L2",
        "rate": "",
        "index": "LPR1Y",
        "spread": "1.5%",
        "rate_floor": "5%",
        "maturity_date": "",
        "term_months": "18",
        "age_months": "",
        "origination_date": "2024-07-15",
    },
]
COMMON: dict[str, Any] = {
    "obligor": "Alpha",
    "balance": "1000000",
    "amortisation": "annuity",
    "payment_frequency": "monthly",
    "interest_only_months": "6",
    "day_count": "ACT/360",
    "ip_kind": "trademark",
    "appraised_value": "300000",
    "value_volatility": "0.4",
    "guarantor": "Guar",
    "guarantee_share": "0.6",
    "guarantee_lag_months": "3",
    "industry": "biotech",
    "region": "Pudong",
    "pd": "3%",
    # a seasoned loan: 6 months old at closing, 18 months left
    "original_balance": "1200000",
    "original_term_months": "24",
}
# the value a `defaults` entry gives for a field whose rows differ (it fills only the rows
# that field applies to: fixed or floating rows, rows without the other of the term pair)
PAIRED = {
    "rate": "5.5%",
    "index": "LPR1Y",
    "spread": "1.5%",
    "rate_floor": "5%",
    "maturity_date": "2026-07-15",
    "term_months": "18",
    "age_months": "6",
    "origination_date": "2024-07-15",
}

HEADER = """deal:
  name: tape defaults
  closing_date: 2025-01-15
  first_payment_date: 2025-02-15
  payment_frequency: monthly
  legal_final_date: 2027-07-15
indices: {LPR1Y: 3.1%}
obligors: [{name: Guar}]
scenarios:
  base:
    defaults: {cdr: 10%}
    recovery: {rate: 40%, lag_months: 6, basis: appraisal}
"""
TAIL = """tranches:
  - {name: senior, balance: 1.5m, coupon: 3%}
  - {name: sub, balance: 500k}
waterfalls:
  normal:
    - pay_interest: senior
    - pay_principal: senior
    - pay_residual: sub
"""


def rows_for(field: str | None) -> list[dict[str, Any]]:
    """The tape's rows when ``field`` comes from ``defaults``. An ``index`` default fills every
    row without an index cell, so that tape's loans are all floating."""
    if field != "index":
        return ROWS
    floating = {k: ROWS[1][k] for k in ("rate", "index", "spread", "rate_floor")}
    return [{**ROWS[0], **floating}, ROWS[1]]


def inline_loans(field: str | None) -> str:
    """The tape's loans as the deal language writes them."""
    c = COMMON
    out = []
    for row in rows_for(field):
        rate = (
            row["rate"]
            if row["rate"]
            else f"{{index: {row['index']}, spread: {row['spread']}, floor: {row['rate_floor']}}}"
        )
        term = (
            f"maturity_date: {row['maturity_date']}"
            if row["maturity_date"]
            else f"term_months: {row['term_months']}"
        )
        age = (
            f"age_months: {row['age_months']}"
            if row["age_months"]
            else f"origination_date: {row['origination_date']}"
        )
        out.append(
            f"      - {{id: {row['id']}, obligor: {c['obligor']}, balance: {c['balance']}, rate: {rate}, "
            f"{age}, original_balance: {c['original_balance']}, "
            f"original_term_months: {c['original_term_months']}, "
            f"{term}, amortisation: {c['amortisation']}, payment_frequency: {c['payment_frequency']}, "
            f"interest_only_months: {c['interest_only_months']}, day_count: {c['day_count']}, "
            f"pledged_ip: {{kind: {c['ip_kind']}, appraised_value: {c['appraised_value']}, "
            f"value_volatility: {c['value_volatility']}}}, "
            f"guarantee: {{guarantor: {c['guarantor']}, share: {c['guarantee_share']}, "
            f"lag_months: {c['guarantee_lag_months']}}}, industry: {c['industry']}, "
            f"region: {c['region']}, pd: {c['pd']}}}"
        )
    return "pools:\n  - name: park\n    loans:\n" + "\n".join(out) + "\n"


def write_tape(path: Path, drop: str | None, rows: list[dict[str, Any]]) -> None:
    fields = [f for f in TAPE_FIELDS if f != drop]
    frame = pd.DataFrame([{f: {**COMMON, **row}[f] for f in fields} for row in rows], columns=fields)
    frame.to_csv(path, index=False)


def tape_deal(tmp_path: Path, drop: str | None, field: str) -> str:
    """The deal on a tape of the rows for ``field``, without the ``drop`` column (then given
    under ``defaults``)."""
    name = f"tape_{drop or 'full'}.csv"
    write_tape(tmp_path / name, drop, rows_for(field))
    defaults = ""
    if drop is not None:
        value = PAIRED[drop] if drop in PAIRED else COMMON[drop]
        defaults = f", defaults: {{{drop}: '{value}'}}"
    return HEADER + f"pools:\n  - name: park\n    tape: {{path: {name}{defaults}}}\n" + TAIL


def run(text: str, base: Path) -> tuple[Any, Any]:
    loaded = parse_deal(text, "deal.yaml", base)
    model = compile_deal(loaded)
    return loaded, model


# ``id`` is left out: ids must differ from row to row, so a default id can only stand for the
# column of a one-row tape (and ids move no cash).
FIELDS = [f for f in TAPE_FIELDS if f != "id"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_tape_default_means_the_value_on_every_loan(field: str, tmp_path: Path) -> None:
    _, model_inline = run(HEADER + inline_loans(field) + TAIL, tmp_path)
    res_inline = api.run(model_inline)
    full_loaded, _ = run(tape_deal(tmp_path, None, field), tmp_path)
    loaded, model = run(tape_deal(tmp_path, field, field), tmp_path)
    pd.testing.assert_frame_equal(loaded.tapes["park"].frame, full_loaded.tapes["park"].frame)
    res = api.run(model)
    for column in res_inline.periods.columns:
        if res_inline.periods[column].dtype.kind == "f":
            assert_cents(res.periods[column].to_numpy(), res_inline.periods[column].to_numpy(), column)
    assert res.summary["loss"].to_numpy() == pytest.approx(res_inline.summary["loss"].to_numpy(), abs=CENT)
    # what the Monte Carlo reads about the obligor
    ob, ob_inline = model.obligors, model_inline.obligors
    assert ob.names == ob_inline.names
    assert ob.industry == ob_inline.industry and ob.region == ob_inline.region
    np.testing.assert_array_equal(ob.pd, ob_inline.pd)
