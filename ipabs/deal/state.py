"""State files: a deal part-way through its life, as a trustee or servicer report gives it.

A state file is YAML (the loans inline or in a CSV/Excel tape beside it). It goes through the
same path as a deal file: parsed with positions (:mod:`ipabs.deal.source`), validated by the
pydantic models below (errors translated by :func:`ipabs.deal.validate.translate`), then
checked against its deal; every problem is an :class:`~ipabs.errors.Issue` located at
``file:line:column`` (a tape cell at ``file:row:column``) with what to do. docs/surveillance.md
describes the format.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, model_validator

from ipabs.deal.base import Model
from ipabs.deal.calendar import deal_calendar_dates
from ipabs.deal.load import LoadedDeal
from ipabs.deal.schema import TapeSource
from ipabs.deal.source import SourceMap, parse_yaml, read_text
from ipabs.deal.types import Date, Money
from ipabs.deal.validate import suggest, translate
from ipabs.errors import DealError, Issue, format_path

LoanStatus = Literal["current", "dpd_1_30", "dpd_31_60", "dpd_61_90", "dpd_90_plus", "defaulted", "repaid"]

DAYS_PAST_DUE: dict[str, tuple[int, int | None]] = {
    "current": (0, 0),
    "dpd_1_30": (1, 30),
    "dpd_31_60": (31, 60),
    "dpd_61_90": (61, 90),
    "dpd_90_plus": (91, None),
    "repaid": (0, 0),
}
"""Days past due each status allows (inclusive; None: no upper bound). A defaulted loan may be
any number of days past due."""

PERFORMING: tuple[str, ...] = ("current", "dpd_1_30", "dpd_31_60", "dpd_61_90", "dpd_90_plus")
"""Statuses whose balance is part of the performing pool balance."""

STATUSES: tuple[str, ...] = (*PERFORMING, "defaulted", "repaid")

TAPE_SUFFIXES = (".csv", ".xlsx", ".xlsm")

AMOUNT_TOLERANCE = 0.005
"""Half a cent: amounts compared with the deal's (a balance above its original) may differ by
rounding."""


# --------------------------------------------------------------------------- the models


class StateTranche(Model):
    """A tranche on the report date, after that date's payments."""

    balance: Money = Field(description="Outstanding principal after the report date's payments.")
    interest_arrears: Money = Field(0.0, description="Interest due and unpaid, carried forward.")
    written_down: Money | None = Field(
        None,
        description="Principal written down so far (deals with `loss_allocation` only; default 0).",
    )


class StateTrigger(Model):
    """A trigger's state on the report date."""

    breached: bool = Field(description="The trigger's test failed on the report date.")
    active: bool | None = Field(
        None,
        description="The trigger is in effect (default: as `breached`; a trigger that is not "
        "curable stays in effect once it fired).",
    )
    consecutive_breaches: int | None = Field(
        None,
        ge=0,
        description="Tests failed in a row up to the report date (default 1 when breached, else 0); "
        "a trigger with `consecutive: N` fires at N.",
    )


class StateSupport(Model):
    """What a support provider (deficiency payment, liquidity facility or liquidity support)
    has provided up to the report date."""

    drawn: Money = Field(description="Amount drawn (or notes bought) to date, in total.")
    outstanding: Money = Field(
        0.0, description="Drawn and not yet repaid or reimbursed, unpaid interest on draws included."
    )


class StateFee(Model):
    """A fee's position on the report date."""

    arrears: Money = Field(0.0, description="Fee due and unpaid, carried forward (paid first next date).")


class StateLedgers(Model):
    """The income and principal ledgers (deals whose waterfalls have `income` and `principal` lists)."""

    principal_deficiency: Money = Field(description="Principal deficiency ledger balance (PDL).")


class StateRoyalty(Model):
    """A royalty or income-share stream on the report date."""

    collected: Money = Field(description="Royalties (or instalments) collected to date.")


def _id_text(value: Any) -> Any:
    """A loan id written as a number (``id: 1001``) is the text ``"1001"``, as in a tape."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class StateLoan(Model):
    """One loan (or lease) of the deal on the report date."""

    id: Annotated[str, BeforeValidator(_id_text)] = Field(
        min_length=1,
        description="The deal's loan id: its `id`, else its obligor's name (NAME#1, NAME#2... when the "
        "obligor has several loans without an id).",
    )
    balance: Money = Field(
        description="Principal outstanding; for a defaulted loan the principal balance when it defaulted."
    )
    status: LoanStatus = Field(
        description="current, dpd_1_30, dpd_31_60, dpd_61_90, dpd_90_plus, defaulted or repaid."
    )
    days_past_due: int | None = Field(
        None, ge=0, description="Days past due (must fall in the status's range)."
    )
    default_date: Date | None = Field(None, description="Date of default (defaulted loans only; required).")
    recovered: Money = Field(0.0, description="Recoveries received so far (defaulted loans only).")
    appraised_value: Money | None = Field(None, description="Latest appraisal of the pledged IP.")
    arrears_interest: Money | None = Field(None, description="Interest overdue.")
    arrears_principal: Money | None = Field(None, description="Principal overdue (part of `balance`).")

    @model_validator(mode="after")
    def _consistent(self) -> StateLoan:
        s = self.status
        if s == "defaulted" and self.default_date is None:
            raise ValueError("default_date is required for a defaulted loan: add `default_date: YYYY-MM-DD`")
        if s != "defaulted" and self.default_date is not None:
            raise ValueError(
                f"default_date is given for a loan whose status is {s!r}: remove it, or set "
                "`status: defaulted`"
            )
        if s != "defaulted" and self.recovered > 0.0:
            raise ValueError(
                f"recovered is given for a loan whose status is {s!r}: only defaulted loans recover"
            )
        if s == "defaulted" and self.recovered > self.balance + AMOUNT_TOLERANCE:
            raise ValueError(
                f"recovered {self.recovered:,.2f} is above the defaulted balance {self.balance:,.2f}: "
                "recoveries above the balance are not principal; check both amounts"
            )
        if s == "repaid" and self.balance > 0.0:
            raise ValueError(f"balance of a repaid loan must be 0, got {self.balance:,.2f}")
        if self.days_past_due is not None and s in DAYS_PAST_DUE:
            low, high = DAYS_PAST_DUE[s]
            d = self.days_past_due
            if d < low or (high is not None and d > high):
                fits = next(
                    (
                        k
                        for k in PERFORMING
                        if DAYS_PAST_DUE[k][0] <= d
                        and (DAYS_PAST_DUE[k][1] is None or d <= DAYS_PAST_DUE[k][1])
                    ),
                    "?",
                )
                span = f"{low}" if high == low else (f"{low} or more" if high is None else f"{low} to {high}")
                raise ValueError(
                    f"days_past_due {d} does not match status {s!r} ({span} days): "
                    f"{d} days is {fits!r}; correct one of them"
                )
        if self.arrears_principal is not None and self.arrears_principal > self.balance + AMOUNT_TOLERANCE:
            raise ValueError(
                f"arrears_principal {self.arrears_principal:,.2f} is above the balance {self.balance:,.2f}: "
                "overdue principal is part of the balance"
            )
        return self


class StateTape(TapeSource):
    """Loans read from a CSV or Excel file, one loan a row (as a deal's loan tape)."""

    path: str = Field(description="CSV (.csv) or Excel (.xlsx) file, relative to the state file.")


class StateLoanTape(Model):
    """The loans of a state in a tape: ``loans: {tape: {path: ...}}``."""

    tape: StateTape = Field(description="The tape file and how its columns map to loan fields.")


class StateFile(Model):
    """A state file: the deal on a report date, after that date's payments (docs/surveillance.md)."""

    report_date: Date = Field(description="Report date: the payment date the state follows.")
    period: int | None = Field(
        None,
        ge=0,
        description="The deal's payment period the report date ends (1 for the first payment date; "
        "derived from the report date when absent, and checked against it when given).",
    )
    tranches: dict[str, StateTranche] = Field(description="Every tranche, by name.")
    accounts: dict[str, Money] = Field(default_factory=dict, description="Every account's balance, by name.")
    cumulative_defaults: Money | None = Field(
        None,
        description="Balance defaulted since closing, the numerator of the cumulative default rate "
        "(default: the sum of the defaulted loans' balances).",
    )
    fees: dict[str, StateFee] = Field(
        default_factory=dict, description="Fees with arrears, by name (a fee not listed has none)."
    )
    ledgers: StateLedgers | None = Field(
        None, description="The ledgers (deals with income/principal waterfalls)."
    )
    triggers: dict[str, StateTrigger] = Field(default_factory=dict, description="Every trigger, by name.")
    support_used: dict[str, StateSupport] = Field(
        default_factory=dict, description="Every support provider (`support` section), by name."
    )
    loans: Annotated[list[StateLoan] | StateLoanTape, Field(union_mode="left_to_right")] = Field(
        default_factory=list, description="The loans and leases: a list, or `{tape: {path: ...}}`."
    )
    unlisted_loans: Literal["error", "repaid"] = Field(
        "error",
        description="Loans of the deal the state does not list: `error` (each must be listed) or "
        "`repaid` (they are repaid, balance 0).",
    )
    royalties: dict[str, StateRoyalty] = Field(
        default_factory=dict, description="Every royalty stream, by id (default: the licensee's name)."
    )


class _TapeRows(Model):
    """The rows of a state's loan tape, validated as inline loans are."""

    loans: list[StateLoan]


# --------------------------------------------------------------------------- the deal's names


@dataclass(frozen=True)
class DealAsset:
    """An asset of the deal as states name it.

    Attributes
    ----------
    id : str
        The id a state uses: the asset's ``id``, else its obligor's name (``name#2``... when the
        obligor has several assets without an id).
    kind : str
        ``loan``, ``lease`` or ``licence`` (a fixed-instalment royalty).
    pool : str
    obligor : str
    balance : float
        Balance at closing (at the cut-off date for a seasoned pool).
    """

    id: str
    kind: str
    pool: str
    obligor: str
    balance: float


def _number_ids(ids: list[str], obligors: list[str], given: list[bool]) -> list[str]:
    """Blank ids become the obligor's name, numbered ``#k`` when it repeats (as in loan tapes)."""
    explicit = {i for i, g in zip(ids, given, strict=True) if g}
    own = [o for o, g in zip(obligors, given, strict=True) if not g]
    counts = {o: own.count(o) for o in own}
    seen: dict[str, int] = {}
    out = []
    for i, o, g in zip(ids, obligors, given, strict=True):
        if g:
            out.append(i)
            continue
        seen[o] = seen.get(o, 0) + 1
        out.append(o if counts[o] == 1 and o not in explicit else f"{o}#{seen[o]}")
    return out


def deal_assets(deal: LoadedDeal) -> list[DealAsset]:
    """The deal's amortising assets, in the order the engine compiles them (inline loans,
    leases and fixed licences of each pool, then each pool's tape).

    Parameters
    ----------
    deal : LoadedDeal

    Returns
    -------
    list of DealAsset
    """
    rows: list[tuple[str, bool, str, str, str, float]] = []  # id, given, kind, pool, obligor, balance
    spec = deal.spec
    for pool in spec.pools:
        for loan in pool.loans:
            rows.append((loan.id or "", loan.id is not None, "loan", pool.name, loan.obligor, loan.balance))
        for lease in pool.leases:
            rows.append(
                (lease.id or "", lease.id is not None, "lease", pool.name, lease.obligor, lease.balance)
            )
        for roy in pool.royalties:
            if roy.kind == "fixed":
                bal = roy.balance if roy.balance is not None else float(sum(roy.instalments or []))
                rows.append((roy.id or "", roy.id is not None, "licence", pool.name, roy.obligor, bal))
    # loans and leases share one namespace, royalty streams have their own
    lent = [r for r in rows if r[2] != "licence"]
    ids = iter(_number_ids([r[0] for r in lent], [r[4] for r in lent], [r[1] for r in lent]))
    licences = iter(deal_royalty_ids(deal))
    inline_ids = [next(licences) if r[2] == "licence" else next(ids) for r in rows]
    out = [
        DealAsset(i, kind, pool, obligor, bal)
        for i, (_, _, kind, pool, obligor, bal) in zip(inline_ids, rows, strict=True)
    ]
    for pool in spec.pools:
        tape = deal.tapes.get(pool.name)
        if tape is None:
            continue
        f = tape.frame
        for ident, obligor, bal in zip(f["id"], f["obligor"], f["balance"], strict=True):
            out.append(DealAsset(str(ident), "loan", pool.name, str(obligor), float(bal)))
    return out


def deal_royalty_ids(deal: LoadedDeal) -> list[str]:
    """Ids of the deal's royalty streams as states name them: fixed licences first (in
    :func:`deal_assets` order), then running royalties and income shares (in the engine's
    order). A stream's id defaults to its licensee's name (``name#2``... when it repeats).

    Returns
    -------
    list of str
    """
    fixed: list[tuple[str, bool, str]] = []
    other: list[tuple[str, bool, str]] = []
    for pool in deal.spec.pools:
        for roy in pool.royalties:
            (fixed if roy.kind == "fixed" else other).append((roy.id or "", roy.id is not None, roy.obligor))
    rows = fixed + other
    return _number_ids([r[0] for r in rows], [r[2] for r in rows], [r[1] for r in rows])


def payment_dates(deal: LoadedDeal) -> list[dt.date]:
    """The deal's payment dates (business-day adjusted under its calendar), the last one the
    legal final date."""
    return list(deal_calendar_dates(deal.spec.deal).payments)


def period_of(deal: LoadedDeal, report_date: dt.date) -> int:
    """The payment period a report date follows: how many payment dates fall on or before it
    (0 before the first payment date)."""
    return sum(d <= report_date for d in payment_dates(deal))


def has_ledgers(deal: LoadedDeal) -> bool:
    """Whether some waterfall of the deal has income and principal ledgers."""
    return any(ledger != "combined" for _w, _p, ledger, _s in deal.spec.waterfall_steps())


# --------------------------------------------------------------------------- loaded states


@dataclass(frozen=True)
class LoadedState:
    """A validated state with where it came from.

    Attributes
    ----------
    spec : StateFile
        The state, its loans always as a list (read from the tape when it has one) and its
        ``period`` filled in.
    source : SourceMap
        Positions in the state file.
    path : Path or None
        The state file.
    tape : str or None
        The loan tape, as shown in messages (None when the loans are inline).
    """

    spec: StateFile
    source: SourceMap = field(compare=False)
    path: Path | None = field(default=None, compare=False)
    tape: str | None = field(default=None, compare=False)

    @property
    def period(self) -> int:
        """The payment period the report date follows."""
        assert self.spec.period is not None
        return self.spec.period


class _Where:
    """Locates a path of the state: in the state file, or a loan's in its tape."""

    def __init__(self, smap: SourceMap, loans: SourceMap | None):
        self.smap = smap
        self.loans = loans
        self.issues: list[Issue] = []

    def add(self, path: Sequence[Any], message: str, hint: str = "", *, key: bool = False) -> None:
        smap = self.loans if (self.loans is not None and path and path[0] == "loans") else self.smap
        line, col = smap.locate(tuple(path), key=key)
        self.issues.append(Issue(smap.file, line, col, format_path(path), message, hint))


def _capped(issues: list[Issue], tape: str | None) -> list[Issue]:
    """At most :data:`~ipabs.deal.tape.MAX_CELL_ISSUES` problems in a loan tape, then one that
    counts the rest (a tape of the wrong deal would otherwise print a line per row)."""
    from ipabs.deal.tape import MAX_CELL_ISSUES

    if tape is None:
        return issues
    cells = sorted((i for i in issues if i.file == tape), key=lambda i: (i.line, i.column))
    if len(cells) <= MAX_CELL_ISSUES:
        return issues
    more = len(cells) - MAX_CELL_ISSUES
    last = cells[MAX_CELL_ISSUES]
    summary = Issue(
        tape,
        last.line,
        last.column,
        "",
        f"... and {more} more problem{'s' * (more > 1)} in this tape",
        "fix the ones above and check the state again",
    )
    return [i for i in issues if i.file != tape] + cells[:MAX_CELL_ISSUES] + [summary]


def _missing(where: _Where, section: str, names: Iterable[str], what: str, how: str) -> None:
    missing = list(names)
    if missing:
        shown = ", ".join(repr(n) for n in missing[:10]) + (
            f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        where.add(
            (section,) if where.smap.has((section,)) else (),
            f"{what} of the deal missing from the state: {shown}",
            how,
            key=where.smap.has((section,)),
        )


def _names(
    where: _Where,
    section: str,
    given: Iterable[str],
    known: Sequence[str],
    what: str,
    how: str,
    required: bool = True,
) -> None:
    """Unknown names in ``section`` (with a suggestion), then (``required``) names of the deal
    it lacks."""
    given = list(given)
    for name in given:
        if name not in known:
            hint = suggest(name, known) or (
                f"the deal's {what}s: " + ", ".join(known) if known else f"the deal has no {what}s"
            )
            where.add((section, name), f"unknown {what} {name!r}", hint, key=True)
    if required:
        _missing(where, section, [n for n in known if n not in given], f"{what}s", how)


def _check(state: StateFile, deal: LoadedDeal, where: _Where) -> int:
    """Check ``state`` against ``deal``; returns the period (issues collected in ``where``)."""
    spec = deal.spec
    info = spec.deal
    closing, final = info.closing_date, info.legal_final_date

    # ---- dates and period
    rd = state.report_date
    period = period_of(deal, rd)
    if rd < closing:
        where.add(
            ("report_date",),
            f"report date {rd} is before the deal's closing date {closing}",
            "check the date",
        )
    elif rd > final:
        where.add(
            ("report_date",),
            f"report date {rd} is after the deal's legal final date {final}",
            "nothing is outstanding after the legal final date; check the date",
        )
    elif state.period is not None and state.period != period:
        dates = payment_dates(deal)
        given = state.period
        said = (
            f"payment date {dates[given - 1]}" if 1 <= given <= len(dates) else "no payment date of the deal"
        )
        on = f"{period} payment date{'s' if period != 1 else ''} fall on or before {rd}"
        where.add(
            ("period",),
            f"period {given} does not match the report date {rd}: {on} (period {given} is {said})",
            f"write `period: {period}`, or remove it: it is derived from the report date",
        )

    # ---- tranches
    tranches = {t.name: t for t in spec.tranches}
    _names(
        where, "tranches", state.tranches, list(tranches), "tranche", "list every tranche with its `balance`"
    )
    for name, t in state.tranches.items():
        deal_t = tranches.get(name)
        if deal_t is None:
            continue
        if t.balance > deal_t.balance + AMOUNT_TOLERANCE:
            where.add(
                ("tranches", name, "balance"),
                f"balance {t.balance:,.2f} is above the tranche's original balance {deal_t.balance:,.2f}",
                "notes only amortise: check the amount, the balance after the report date's payments",
            )
        if t.written_down is not None:
            if spec.loss_allocation is None:
                where.add(
                    ("tranches", name, "written_down"),
                    "written_down is given but the deal has no `loss_allocation`",
                    "remove it: the deal's notes are not written down",
                )
            elif t.balance + t.written_down > deal_t.balance + AMOUNT_TOLERANCE:
                where.add(
                    ("tranches", name, "written_down"),
                    f"balance {t.balance:,.2f} plus written_down {t.written_down:,.2f} is above the "
                    f"tranche's original balance {deal_t.balance:,.2f}",
                    "check both amounts",
                )

    # ---- fees: only those in arrears need be listed
    _names(where, "fees", state.fees, [f.name for f in spec.fees], "fee", "", required=False)

    # ---- accounts, ledgers
    _names(
        where,
        "accounts",
        state.accounts,
        [a.name for a in spec.accounts],
        "account",
        "give every account's balance",
    )
    if has_ledgers(deal):
        if state.ledgers is None:
            where.add(
                (),
                "the deal has income and principal ledgers: the state needs `ledgers`",
                "add `ledgers: {principal_deficiency: AMOUNT}`",
            )
    elif state.ledgers is not None:
        where.add(
            ("ledgers",),
            "the deal's waterfalls have no income and principal ledgers",
            "remove `ledgers`",
            key=True,
        )

    # ---- triggers
    triggers = {t.name: t for t in spec.triggers}
    _names(
        where,
        "triggers",
        state.triggers,
        list(triggers),
        "trigger",
        "give every trigger's `breached: true|false`",
    )
    for name, t in state.triggers.items():
        deal_t = triggers.get(name)
        if deal_t is None:
            continue
        n = t.consecutive_breaches
        if n is not None and not t.breached and n > 0:
            where.add(
                ("triggers", name, "consecutive_breaches"),
                f"consecutive_breaches is {n} but the trigger is not breached on the report date",
                "a test that passes ends the run of breaches: write 0, or `breached: true`",
            )
        if n is not None and t.breached and n == 0:
            where.add(
                ("triggers", name, "consecutive_breaches"),
                "consecutive_breaches is 0 but the trigger is breached on the report date",
                "count the report date's breach: at least 1",
            )
        run = n if n is not None else int(t.breached)
        if t.active is False and t.breached and run >= deal_t.consecutive:
            where.add(
                ("triggers", name, "active"),
                f"the trigger is breached {run} time(s) in a row (it fires at {deal_t.consecutive}) but "
                "`active` is false",
                "set `active: true`, or correct `consecutive_breaches`",
            )
        if t.active is True and not t.breached and deal_t.curable:
            where.add(
                ("triggers", name, "active"),
                "a curable trigger whose test passes is not in effect, but `active` is true",
                "set `active: false` or `breached: true`",
            )

    # ---- support
    supports = {s.name: s for s in spec.support}
    _names(
        where,
        "support_used",
        state.support_used,
        list(supports),
        "support provider",
        "give every provider's `drawn` amount (0 if none)",
    )
    for name, s in state.support_used.items():
        deal_s = supports.get(name)
        if deal_s is None:
            continue
        cap = getattr(deal_s, "cap_total", None)
        if deal_s.kind == "liquidity_support":
            cap = deal_s.limit
        if cap is not None and s.drawn > cap + AMOUNT_TOLERANCE:
            where.add(
                ("support_used", name, "drawn"),
                f"drawn {s.drawn:,.2f} is above the provider's total cap {cap:,.2f}",
                "check the amount",
            )
        if deal_s.kind == "liquidity_facility" and s.outstanding > deal_s.limit + AMOUNT_TOLERANCE:
            where.add(
                ("support_used", name, "outstanding"),
                f"outstanding {s.outstanding:,.2f} is above the facility's limit {deal_s.limit:,.2f}",
                "check the amount",
            )

    # ---- royalties
    _names(
        where,
        "royalties",
        state.royalties,
        deal_royalty_ids(deal),
        "royalty stream",
        "give every stream's `collected` amount",
    )

    # ---- loans
    assets = [a for a in deal_assets(deal) if a.kind in ("loan", "lease")]
    by_id: dict[str, DealAsset] = {}
    for a in assets:
        if a.id in by_id:
            where.add(
                ("loans",),
                f"the deal has two loans with id {a.id!r} (pools {by_id[a.id].pool!r} and {a.pool!r})",
                "give the deal's loans their own `id`",
                key=True,
            )
        by_id.setdefault(a.id, a)
    loans = state.loans if isinstance(state.loans, list) else []
    first: dict[str, int] = {}
    for i, loan in enumerate(loans):
        asset = by_id.get(loan.id)
        if loan.id in first:
            where.add(
                ("loans", i, "id"),
                f"loan {loan.id!r} is listed twice (first as loans[{first[loan.id]}])",
                "list each loan once",
            )
            continue
        first[loan.id] = i
        if asset is None:
            where.add(
                ("loans", i, "id"),
                f"unknown loan {loan.id!r}",
                suggest(loan.id, list(by_id))
                or "a loan's id is its `id` in the deal, else its obligor's name",
            )
            continue
        # a lease whose rents are below its interest accretes: only loans never grow
        if asset.kind == "loan" and loan.balance > asset.balance + AMOUNT_TOLERANCE:
            where.add(
                ("loans", i, "balance"),
                f"balance {loan.balance:,.2f} is above the loan's balance at closing {asset.balance:,.2f}",
                "check the amount",
            )
        d = loan.default_date
        if d is not None and d > rd:
            where.add(
                ("loans", i, "default_date"),
                f"default date {d} is after the report date {rd}",
                "check the date",
            )
        elif d is not None and d < closing:
            where.add(
                ("loans", i, "default_date"),
                f"default date {d} is before the deal's closing date {closing}",
                "a loan in default at closing is not in the pool; check the date",
            )
    unlisted = [a.id for a in assets if a.id not in first]
    if unlisted and state.unlisted_loans == "error":
        _missing(
            where,
            "loans",
            unlisted,
            "loans",
            "list every loan (status `repaid` for repaid ones), or write `unlisted_loans: repaid`",
        )
    return period


# --------------------------------------------------------------------------- loan tapes


def _cell(value: Any) -> Any:
    """A cell as YAML would give it: None when blank; whole floats of an id or a count as ints."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        return value.to_pydatetime().date()
    return value


def _read_table(path: Path, display: str, sheet: str | None) -> list[list[Any]]:
    """Rows of a CSV or Excel file (the header first)."""
    if path.suffix.lower() == ".csv":
        text = read_text(path, display, "a loan tape")
        return [row for row in csv.reader(io.StringIO(text))]
    import pandas as pd  # only for Excel tapes

    frame = pd.read_excel(path, sheet_name=sheet or 0, header=None, dtype=object)
    return [list(r) for r in frame.itertuples(index=False)]


def _read_tape(tape: StateTape, smap: SourceMap, base: Path) -> tuple[list[StateLoan], SourceMap, str]:
    """Read and validate a state's loan tape; issues in the tape at ``file:row:column``."""
    at = ("loans", "tape")
    fields = list(StateLoan.model_fields)

    def yaml_issue(path: tuple[Any, ...], message: str, hint: str = "", *, key: bool = False) -> Issue:
        line, col = smap.locate((*at, *path), key=key)
        return Issue(smap.file, line, col, format_path((*at, *path)), message, hint)

    issues: list[Issue] = []
    for section in ("columns", "defaults"):
        for name in getattr(tape, section):
            if name not in fields:
                issues.append(
                    yaml_issue(
                        (section, name),
                        f"unknown loan field {name!r}",
                        suggest(name, fields) or "loan fields: " + ", ".join(fields),
                        key=True,
                    )
                )
    path = base / tape.path
    display = str(Path(smap.file).parent / tape.path) if smap.file else tape.path
    suffix = path.suffix.lower()
    if suffix not in TAPE_SUFFIXES:
        issues.append(
            yaml_issue(
                ("path",),
                f"unsupported tape file type {suffix or '(none)'!r}",
                "save it as CSV (UTF-8) or .xlsx",
            )
        )
    elif not path.is_file():
        what = "is a directory" if path.is_dir() else "not found"
        issues.append(
            yaml_issue(
                ("path",), f"tape {what}: {display}", "the path is relative to the state file's directory"
            )
        )
    if suffix not in TAPE_SUFFIXES or not path.is_file():
        raise DealError(issues)
    try:
        table = _read_table(path, display, tape.sheet)
    except DealError:
        raise
    except Exception as exc:  # a corrupt workbook, a missing sheet: the reader's own words
        raise DealError(
            [yaml_issue(("path",), f"cannot read the tape: {exc}", "save it again as CSV (UTF-8) or .xlsx")]
        ) from None
    if not table:
        raise DealError([Issue(display, 1, 1, "", "the tape is empty", "the first row names the columns")])
    header = [str(_cell(h) or "") for h in table[0]]
    position: dict[str, int] = {}
    for name in fields:
        wanted = tape.columns.get(name, name)
        if wanted in header:
            position[name] = header.index(wanted) + 1
        elif name in tape.columns:
            issues.append(
                yaml_issue(
                    ("columns", name),
                    f"column {wanted!r} is not in the tape",
                    suggest(wanted, header) or "the tape's columns: " + ", ".join(h for h in header if h),
                )
            )
    for name in ("id", "balance", "status"):
        if name not in position and name not in tape.defaults:
            issues.append(
                Issue(
                    display,
                    1,
                    1,
                    "",
                    f"no column for {name!r}",
                    f"add a column {name!r}, or map one with `columns: {{{name}: HEADER}}`",
                )
            )
    if issues:
        raise DealError(issues)

    tsmap = SourceMap(display)
    rows: list[dict[str, Any]] = []
    from_defaults: dict[str, str] = {}  # field path -> field whose value came from `defaults`
    for r, raw in enumerate(table[1:], start=2):
        cells = {name: _cell(raw[p - 1]) if p - 1 < len(raw) else None for name, p in position.items()}
        if all(v is None for v in cells.values()):
            continue  # a blank line
        i = len(rows)
        tsmap.values[("loans", i)] = (r, 1)
        row: dict[str, Any] = {}
        for name in fields:
            value = cells.get(name)
            if value is None and name in tape.defaults:
                row[name] = tape.defaults[name]
                from_defaults[format_path(("loans", i, name))] = name
                tsmap.values[("loans", i, name)] = (r, 1)
            elif value is not None:
                row[name] = str(value) if name == "id" else value
                tsmap.values[("loans", i, name)] = (r, position[name])
        rows.append(row)
    data = {"loans": rows}
    try:
        parsed = _TapeRows.model_validate(data)
    except ValidationError as exc:
        out = []
        for issue in translate(exc, data, tsmap, _TapeRows):
            name = from_defaults.get(issue.path)
            if name is not None:  # the value is the `defaults` entry's: say so there
                line, col = smap.locate((*at, "defaults", name))
                out.append(
                    Issue(
                        smap.file,
                        line,
                        col,
                        format_path((*at, "defaults", name)),
                        f"row {issue.line}: {issue.message}",
                        issue.hint,
                    )
                )
            else:
                out.append(issue)
        raise DealError(_capped(out, display)) from None
    return list(parsed.loans), tsmap, display


# --------------------------------------------------------------------------- loading


def _build(deal: LoadedDeal, data: Any, smap: SourceMap, path: Path | None) -> LoadedState:
    if not isinstance(data, dict):
        raise DealError(
            [
                Issue(
                    smap.file,
                    1,
                    1,
                    "",
                    "a state file must be a mapping of sections",
                    "start with `report_date:` and `tranches:`",
                )
            ]
        )
    try:
        state = StateFile.model_validate(data)
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, StateFile)) from None
    loans_smap = None
    tape_file = None
    if isinstance(state.loans, StateLoanTape):
        base = path.parent if path is not None else Path.cwd()
        loans, loans_smap, tape_file = _read_tape(state.loans.tape, smap, base)
        state = state.model_copy(update={"loans": loans})
    where = _Where(smap, loans_smap)
    period = _check(state, deal, where)
    if where.issues:
        raise DealError(_capped(where.issues, tape_file))
    return LoadedState(state.model_copy(update={"period": period}), smap, path, tape_file)


def load_state(deal: LoadedDeal, path: str | Path) -> LoadedState:
    """Read a state file and check it against its deal.

    Parameters
    ----------
    deal : LoadedDeal
        The deal the state belongs to (see :func:`ipabs.deal.load.load_deal`).
    path : str or Path
        YAML state file; a loan tape it names is read relative to its folder.

    Returns
    -------
    LoadedState

    Raises
    ------
    DealError
        With every problem found, each located as ``file:line:column`` (a tape cell as
        ``tape:row:column``) with its field path and what to do.

    Examples
    --------
    >>> deal = ipabs.load_deal("scenarios/caohejing_ip_pledge.yaml")  # doctest: +SKIP
    >>> state = load_state(deal, "scenarios/states/caohejing_2025q3.yaml")  # doctest: +SKIP
    >>> state.period  # doctest: +SKIP
    3
    """
    p = Path(path)
    data, smap = parse_yaml(read_text(p, what="a state file"), str(path))
    return _build(deal, data, smap, p)


def parse_state(
    deal: LoadedDeal, text: str, file: str = "<string>", base_dir: str | Path | None = None
) -> LoadedState:
    """Validate a state given as YAML text (see :func:`load_state`); ``base_dir`` is where a
    loan tape's path is resolved (default: the current directory)."""
    data, smap = parse_yaml(text, file)
    return _build(deal, data, smap, Path(base_dir) / file if base_dir is not None else None)
