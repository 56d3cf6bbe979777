"""Checks across sections: names that must exist, dates in order, collateral vs notes."""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterable
from typing import Any

from ipabs.deal.schema import (
    MONTHS_PER_PERIOD,
    Deal,
    FloatingRate,
    Formula,
    InterestRateSwap,
    LiquidityFacility,
    LiquiditySupport,
    RefinancingBelowCoupon,
    Step,
)
from ipabs.deal.source import SourceMap
from ipabs.deal.types import TEST_QUANTITIES, parse_quantity
from ipabs.deal.validate import suggest
from ipabs.errors import Issue, format_path


class _Checker:
    def __init__(self, deal: Deal, smap: SourceMap, tapes: dict[str, Any]):
        self.deal = deal
        self.smap = smap
        self.tapes = tapes
        self.issues: list[Issue] = []
        self.tranches = [t.name for t in deal.tranches]
        self.fees = [f.name for f in deal.fees]
        self.accounts = [a.name for a in deal.accounts]
        self.support = [s.name for s in deal.support]
        self.liquidity = [s.name for s in deal.support if isinstance(s, LiquidityFacility)]
        self.waterfalls = list(deal.waterfalls)
        self.pools = [p.name for p in deal.pools]
        self.obligors = self._obligor_names()

    def _obligor_names(self) -> list[str]:
        names = [o.name for o in self.deal.obligors]
        for pool in self.deal.pools:
            for a in (*pool.loans, *pool.leases, *pool.royalties):
                names.append(a.obligor)
            tape = self.tapes.get(pool.name)
            if tape is not None:
                names.extend(tape.obligor_names())
        return list(dict.fromkeys(names))

    def add(self, path: Iterable[Any], message: str, hint: str = "", *, key: bool = False) -> None:
        p = tuple(path)
        line, col = self.smap.locate(p, key=key)
        self.issues.append(Issue(self.smap.file, line, col, format_path(p), message, hint))

    def ref(
        self, path: tuple[Any, ...], name: str, options: list[str], what: str, *, key: bool = False
    ) -> None:
        if name not in options:
            options = list(dict.fromkeys(options))
            shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
            hint = suggest(name, options) or (
                f"known {what}s: {shown}" if options else f"define the {what} first"
            )
            self.add(path, f"unknown {what} {name!r}", hint, key=key)

    def written(self, *candidates: tuple[Any, ...]) -> tuple[Any, ...]:
        """The first candidate path that is written in the file (shorthands such as
        ``pay_principal: senior`` have no ``tranches[0]``); else the last one."""
        for c in candidates:
            if self.smap.has(c):
                return c
        return candidates[-1]

    # ------------------------------------------------------------------ sections
    def unique(self) -> None:
        for section, names in (
            ("tranches", self.tranches),
            ("fees", self.fees),
            ("accounts", self.accounts),
            ("support", self.support),
            ("pools", self.pools),
            ("triggers", [t.name for t in self.deal.triggers]),
            ("loss_cover", [c.name for c in self.deal.loss_cover]),
        ):
            seen: set[str] = set()
            for i, n in enumerate(names):
                if n in seen:
                    self.add((section, i, "name"), f"duplicate name {n!r}", "names must be unique")
                seen.add(n)
        seen_o: set[str] = set()
        for i, o in enumerate(self.deal.obligors):
            if o.name in seen_o:
                self.add(
                    ("obligors", i, "name"),
                    f"duplicate obligor {o.name!r}",
                    "list each obligor once",
                )
            seen_o.add(o.name)
        for i, s in enumerate(self.deal.support):
            if s.name in self.accounts:
                self.add(
                    ("support", i, "name"),
                    f"name {s.name!r} is also an account",
                    "a draw names its source; give the account and the support different names",
                )

    def quantity(self, path: tuple[Any, ...], text: str, before_triggers: bool = False) -> None:
        """Check the names a quantity refers to; ``before_triggers``: it is read before the
        triggers are tested (a fee), so it may not be a test quantity."""
        ref = parse_quantity(text)
        if ref.kind == "trigger":
            self.ref(path, ref.names[0], {t.name for t in self.deal.triggers}, "trigger")
        else:
            for n in ref.names:
                self.ref(path, n, self.tranches, "tranche")
        if before_triggers and ref.kind in TEST_QUANTITIES:
            self.add(
                path,
                f"a fee cannot read {text!r}: fees fall due before the triggers are tested",
                "use an amount quantity (see the list of quantities), or a reserve target",
            )
        if before_triggers and ref.months:
            self.add(
                path,
                f"a fee cannot read {text!r}: it sums fees and interest of future dates",
                "use it in a reserve target",
            )

    def amount(self, path: tuple[Any, ...], amount: Any, before_triggers: bool = False) -> None:
        if isinstance(amount, Formula):
            self.quantity((*path, "of"), amount.of, before_triggers)
            if amount.cap is not None and amount.cap < amount.floor:
                self.add(path, "cap is below floor", "raise the cap or lower the floor")

    def dates(self) -> None:
        info = self.deal.deal
        close, final = info.closing_date, info.legal_final_date
        self.calendar()
        for i, t in enumerate(self.deal.tranches):
            if t.expected_maturity is not None and not close < t.expected_maturity <= final:
                self.add(
                    ("tranches", i, "expected_maturity"),
                    "expected maturity must fall after closing and on or before legal final",
                )
        close = info.cut_off  # asset balances and terms are as of the cut-off (default: closing)
        when = "closing" if info.cut_off_date is None else "the cut-off date"
        for pi, pool in enumerate(self.deal.pools):
            for section in ("loans", "leases", "royalties"):
                for ai, a in enumerate(getattr(pool, section)):
                    base = ("pools", pi, section, ai)
                    if section == "loans":
                        self.seasoning(base, a)
                    mat = getattr(a, "maturity_date", None)
                    if mat is not None:
                        if mat <= close:
                            self.add(
                                (*base, "maturity_date"),
                                f"matures on or before {when}",
                                f"balances are as of {when}; drop matured loans",
                            )
                        elif mat > final:
                            self.add(
                                (*base, "maturity_date"),
                                "matures after the legal final date",
                                "cash after legal final is not modelled: extend legal_final_date",
                            )
                    term = getattr(a, "term_months", None)
                    if term is not None and _add_months(close, term) > final:
                        self.add(
                            (*base, "term_months"),
                            "runs past the legal final date",
                            "shorten the term or extend legal_final_date",
                        )
                    sched = getattr(a, "schedule", None)
                    if sched:
                        prev = close
                        for si, pay in enumerate(sched):
                            if pay.date <= prev:
                                self.add(
                                    (*base, "schedule", si, "date"),
                                    f"schedule dates must increase after {when}",
                                )
                            prev = pay.date
                        end = mat or _add_months(close, term or 0)
                        if sched[-1].date > end:
                            self.add((*base, "schedule"), "a scheduled payment falls after maturity")
                        if sum(p.principal for p in sched) > a.balance * (1 + 1e-9):
                            self.add((*base, "schedule"), "scheduled principal exceeds the balance")
                    payments = (
                        getattr(a, "rents", None)
                        if section == "leases"
                        else (getattr(a, "instalments", None) if section == "royalties" else None)
                    )
                    if payments:
                        last = _add_months(close, len(payments) * MONTHS_PER_PERIOD[a.payment_frequency])
                        if last > final:
                            field = "rents" if section == "leases" else "instalments"
                            self.add(
                                (*base, field),
                                f"payment {len(payments)} falls on {last}, after the legal final date",
                                "drop payments or extend legal_final_date",
                            )
                    if section == "royalties":
                        start = a.start_date or info.closing_date
                        end = a.end_date or final
                        if end <= start:
                            self.add((*base, "end_date"), "end_date must be after start_date")
                        if a.end_date is not None and a.end_date > final:
                            self.add((*base, "end_date"), "runs past the legal final date")
                        if a.kind == "running" and a.cap is not None and a.cap < a.minimum:
                            self.add((*base, "cap"), "cap is below the minimum royalty")

    # ---- calendars
    def calendar(self) -> None:
        """Determination dates inside the deal's life; the first payment date where the
        determination dates put it; no revolving period with collection periods of their own."""
        info = self.deal.deal
        cal = info.calendar
        det = None if cal is None else cal.determination_dates
        if self.deal.revolving is not None and (det is not None or info.cut_off_date is not None):
            self.add(
                ("deal", "calendar" if det is not None else "cut_off_date"),
                "a revolving deal cannot have determination dates or a cut-off date yet",
                "leave them out (collection periods then end on the payment dates, from closing)",
            )
        if det is None:
            return
        path = ("deal", "calendar", "determination_dates", "first")
        if not info.cut_off < det.first < info.first_payment_date:
            self.add(
                path,
                f"the first determination date {det.first} must fall after the cut-off date "
                f"({info.cut_off}) and before the first payment date ({info.first_payment_date})",
                "give the end of the first collection period",
            )
            return
        from ipabs.deal.calendar import deal_calendar_dates

        first = deal_calendar_dates(info).payments[0]
        if first != info.first_payment_date:
            self.add(
                ("deal", "first_payment_date"),
                f"first_payment_date {info.first_payment_date} is not "
                f"{det.payment_delay_business_days} business days after the first determination "
                f"date {det.first}",
                f"write first_payment_date: {first}, or change the determination dates",
            )

    # ---- seasoned pools
    def seasoning(self, base: tuple[Any, ...], loan: Any) -> None:
        """A seasoned loan's origination before the cut-off, and its original term equal to its
        age plus its remaining term."""
        from ipabs.calendars import loan_age, months_to

        cut_off = self.deal.deal.cut_off
        if loan.origination_date is not None and loan.origination_date > cut_off:
            self.add(
                (*base, "origination_date"),
                f"originated on {loan.origination_date}, after the cut-off date ({cut_off})",
                "balances are as of the cut-off date: leave out loans made after it",
            )
            return
        if loan.original_term_months is None:
            return
        age = loan_age(loan.age_months, loan.origination_date, cut_off)
        if loan.term_months is not None:
            remaining = loan.term_months
        else:
            remaining = months_to(cut_off, loan.maturity_date)
        if age + remaining != loan.original_term_months:
            self.add(
                (*base, "original_term_months"),
                f"original_term_months {loan.original_term_months} is not the age ({age}) plus the "
                f"remaining term ({remaining} months from the cut-off date)",
                "check the age, the maturity or term, and the original term",
            )

    def assets(self) -> None:
        seen_pd: dict[str, tuple[Any, tuple[Any, ...]]] = {
            o.name: ((o.pd, o.pd_curve, o.cumulative_pd, o.industry, o.region), ("obligors", i))
            for i, o in enumerate(self.deal.obligors)
        }
        for i, o in enumerate(self.deal.obligors):
            self.horizon(("obligors", i), o.cumulative_pd)
        for pi, pool in enumerate(self.deal.pools):
            for section in ("loans", "leases", "royalties"):
                for ai, a in enumerate(getattr(pool, section)):
                    base = ("pools", pi, section, ai)
                    rate = getattr(a, "rate", None)
                    if hasattr(rate, "index"):
                        self.ref((*base, "rate", "index"), rate.index, list(self.deal.indices), "index")
                    guarantee = getattr(a, "guarantee", None)
                    if guarantee is not None:
                        self.ref(
                            (*base, "guarantee", "guarantor"),
                            guarantee.guarantor,
                            self.obligors,
                            "obligor",
                        )
                        if guarantee.guarantor == a.obligor:
                            self.add(
                                (*base, "guarantee", "guarantor"),
                                "an obligor cannot guarantee itself",
                            )
                    self.horizon(base, a.cumulative_pd)
                    attrs = (a.pd, a.pd_curve, a.cumulative_pd, a.industry, a.region)
                    if any(v is not None for v in attrs):
                        prev = seen_pd.get(a.obligor)
                        if prev is not None and (
                            any(
                                x is not None and y is not None and x != y
                                for x, y in zip(prev[0], attrs, strict=True)
                            )
                            or _pd_forms_differ(prev[0], attrs)
                        ):
                            self.add(
                                base,
                                f"obligor {a.obligor!r} has conflicting "
                                "pd/pd_curve/cumulative_pd/industry/region",
                                f"see {format_path(prev[1])}; give obligor attributes once",
                            )
                        elif prev is None:
                            seen_pd[a.obligor] = (attrs, base)
        for name, tranche in enumerate(self.deal.tranches):
            if not isinstance(tranche.coupon, list) and hasattr(tranche.coupon, "index"):
                self.ref(
                    ("tranches", name, "coupon", "index"),
                    tranche.coupon.index,
                    list(self.deal.indices),
                    "index",
                )
                self.coupon_not_negative(name, tranche.coupon)
        self.note_options()

    # ---- note options
    def floating(self, path: tuple[Any, ...], coupon: Any) -> None:
        """A floating coupon's index must exist, and the coupon must not go negative."""
        if hasattr(coupon, "index"):
            self.ref((*path, "index"), coupon.index, list(self.deal.indices), "index")
            self.coupon_not_negative(path[1], coupon, path)

    def n_payment_dates(self) -> int | None:
        """Number of payment dates (None when the dates themselves are inconsistent)."""
        from ipabs.dates import payment_dates

        info = self.deal.deal
        if info.first_payment_date > info.legal_final_date:
            return None
        return len(
            payment_dates(
                info.first_payment_date, info.legal_final_date, MONTHS_PER_PERIOD[info.payment_frequency]
            )
        )

    def note_options(self) -> None:
        """Coupon schedules, investor puts and issuer calls."""
        from ipabs.deal.calendar import deal_calendar_dates

        info = self.deal.deal
        close, final = info.closing_date, info.legal_final_date
        dates = deal_calendar_dates(info).payments  # puts and calls fall on the (adjusted) dates
        for i, tr in enumerate(self.deal.tranches):
            base = ("tranches", i)
            if isinstance(tr.coupon, list):
                for j, step in enumerate(tr.coupon):
                    self.floating((*base, "coupon", j, "rate"), step.rate)
                    if j == 0 and step.date > close:
                        self.add(
                            (*base, "coupon", 0, "from"),
                            f"the first coupon applies from {step.date.isoformat()}, after the closing "
                            f"date {close.isoformat()}: no coupon is set for the first days",
                            f"start the schedule on or before {close.isoformat()}",
                        )
                    if j > 0 and step.date <= tr.coupon[j - 1].date:
                        self.add(
                            (*base, "coupon", j, "from"),
                            "coupon schedule dates must increase",
                            "list the coupons in date order, one per date",
                        )
            put = tr.put
            if put is None:
                continue
            if put.date not in dates:
                near = min(dates, key=lambda d: abs((d - put.date).days))
                self.add(
                    (*base, "put", "date"),
                    f"the put date {put.date.isoformat()} is not a payment date",
                    f"puts settle on payment dates; the nearest is {near.isoformat()}",
                )
            if put.reset_coupon is not None:
                self.floating((*base, "put", "reset_coupon"), put.reset_coupon)
            kinds = {x.name: x for x in self.deal.support}
            if put.supporter not in kinds:
                self.ref((*base, "put", "supporter"), put.supporter, self.support, "support")
            elif not isinstance(kinds[put.supporter], LiquiditySupport):
                self.add(
                    (*base, "put", "supporter"),
                    f"support {put.supporter!r} is a {kinds[put.supporter].kind}; a put's supporter "
                    "must be of kind liquidity_support",
                    "add a support {name, kind: liquidity_support, provider, limit} and name it here",
                )
        call = self.deal.issuer_call
        if call is not None:
            if not close < call.date <= final:
                self.add(
                    ("issuer_call", "from"),
                    "the issuer call date must fall after closing and on or before legal final",
                )
            self.call_policy(("issuer_call", "exercise"), call.exercise)
        for name, sc in self.deal.scenarios.items():
            base = ("scenarios", name)
            if sc.issuer_call is not None:
                if call is None:
                    self.add(
                        (*base, "issuer_call"),
                        "the scenario sets an issuer call policy but the deal has no issuer_call",
                        "add a top-level `issuer_call: {from: DATE}` or drop this key",
                    )
                self.call_policy((*base, "issuer_call"), sc.issuer_call)
            with_put = [t.name for t in self.deal.tranches if t.put is not None]
            for tname, ov in sc.puts.items():
                if tname not in with_put:
                    if tname in self.tranches:
                        self.add((*base, "puts", tname), f"tranche {tname!r} has no put", key=True)
                    else:
                        self.ref((*base, "puts", tname), tname, self.tranches, "tranche", key=True)
                if ov.reset_coupon is not None and hasattr(ov.reset_coupon, "index"):
                    path = (*base, "puts", tname, "reset_coupon", "index")
                    self.ref(path, ov.reset_coupon.index, list(self.deal.indices), "index")

    def call_policy(self, path: tuple[Any, ...], policy: Any) -> None:
        if isinstance(policy, RefinancingBelowCoupon):
            r = policy.refinancing_below_coupon
            where = (*path, "refinancing_below_coupon", "index")
            self.ref(where, r.index, list(self.deal.indices), "index")

    def coupon_not_negative(self, k: int, coupon: Any, path: tuple[Any, ...] | None = None) -> None:
        """A floating note coupon must not fall below 0 on the deal's index curve: notes pay
        no negative interest, so the coupon shown would not be the one paid."""
        curve = self.deal.indices.get(coupon.index)
        if curve is None:
            return
        levels = [p.rate for p in curve] if isinstance(curve, list) else [curve]
        lowest = min(levels) + coupon.spread
        if coupon.floor is not None:
            lowest = max(lowest, coupon.floor)
        if lowest < 0:
            self.add(
                ("tranches", k, "coupon") if path is None else path,
                f"the coupon falls to {lowest:.4%} where index {coupon.index} is lowest; a note "
                "coupon must not be negative (notes pay no negative interest)",
                "add `floor: 0` to the coupon, or raise the spread",
            )

    def horizon(self, path: tuple[Any, ...], horizon: Any) -> None:
        """A ``cumulative_pd`` date must come after closing."""
        if horizon is None or horizon.by == "legal_final":
            return
        closing = self.deal.deal.closing_date
        if horizon.by <= closing:
            self.add(
                (*path, "cumulative_pd", "by"),
                f"the date of a cumulative PD ({horizon.by.isoformat()}) must be after the closing date "
                f"({closing.isoformat()})",
                "give a later date, or `by: legal_final`",
            )

    def collateral(self) -> None:
        info = self.deal.deal
        total = 0.0
        for pi, pool in enumerate(self.deal.pools):
            total += sum(a.balance for a in (*pool.loans, *pool.leases))
            for ri, r in enumerate(pool.royalties):
                value = r.valuation
                if isinstance(value, list):  # ---- collateral value: one per payment date
                    n = self.n_payment_dates()
                    if n is not None and len(value) > n:
                        self.add(
                            ("pools", pi, "royalties", ri, "valuation"),
                            f"the valuation has {len(value)} amounts; the deal has {n} payment dates",
                            f"give at most one value per payment date ({n}); the last one repeats",
                        )
                    value = value[0]
                total += value if value is not None else (r.balance or 0.0)
            tape = self.tapes.get(pool.name)
            if tape is not None:
                total += tape.total_balance()
        notes = sum(t.balance for t in self.deal.tranches)
        if total + 1e-6 < notes and not info.collateral_shortfall_reason:
            self.add(
                ("deal",),
                f"collateral ({total:,.2f}) is smaller than the notes ({notes:,.2f})",
                "fix the balances, or say why in `collateral_shortfall_reason:` here",
            )

    def liabilities(self) -> None:
        for i, f in enumerate(self.deal.fees):
            self.quantity(("fees", i, "base"), f.base, before_triggers=True)
        for i, a in enumerate(self.deal.accounts):
            self.amount(("accounts", i, "target"), a.target)
        for i, s in enumerate(self.deal.support):
            self.ref(("support", i, "provider"), s.provider, self.obligors, "obligor")
        for i, t in enumerate(self.deal.triggers):
            base = ("triggers", i)
            for j, n in enumerate(t.tranches):
                self.ref((*base, "tranches", j), n, self.tranches, "tranche")
            if t.kind in ("dscr", "overcollateralisation", "interest_shortfall") and not t.tranches:
                self.add(base, f"a {t.kind} trigger needs `tranches`", "name the notes it tests")
            if t.kind == "put_unfunded":  # ---- note options
                with_put = [x.name for x in self.deal.tranches if x.put is not None]
                if not with_put:
                    self.add(
                        (*base, "kind"),
                        "a put_unfunded trigger needs a tranche with a `put`",
                        "give a tranche `put: {date, supporter}`",
                    )
                for j, n in enumerate(t.tranches):
                    if n in self.tranches and n not in with_put:
                        self.add((*base, "tranches", j), f"tranche {n!r} has no put")
            if t.valuation is not None:  # ---- covenants
                self.amount((*base, "valuation"), t.valuation)
            if t.kind == "collections_vs_projection" and isinstance(t.projection, list):
                n = self.n_payment_dates()
                if n is not None and len(t.projection) != n:
                    self.add(
                        (*base, "projection"),
                        f"the projection has {len(t.projection)} amounts; the deal has {n} payment dates",
                        f"give one projected amount per payment date ({n})",
                    )
            if t.kind == "reserve_below_target":
                if t.account is None:
                    self.add(base, "a reserve_below_target trigger needs `account`")
                else:
                    self.ref((*base, "account"), t.account, self.accounts, "account")
            if t.effect.waterfall is not None:
                self.ref((*base, "effect", "waterfall"), t.effect.waterfall, self.waterfalls, "waterfall")
            if not (t.effect.sequential or t.effect.trap or t.effect.waterfall or t.effect.end_revolving):
                self.add(
                    (*base, "effect"),
                    "the trigger has no effect",
                    "set sequential, trap, waterfall or end_revolving",
                )
            if t.effect.end_revolving and self.deal.revolving is None:
                self.add(
                    (*base, "effect", "end_revolving"),
                    "the deal has no revolving period to end",
                    "add a `revolving:` section, or remove end_revolving",
                )
            if t.kind == "obligor_default":
                if t.obligor is None:
                    self.add(
                        base, "an obligor_default trigger needs `obligor`", "name the obligor it watches"
                    )
                else:
                    self.ref((*base, "obligor"), t.obligor, self.obligors, "obligor")
            if t.effect.trap and not any(s.trap_cash for *_, s in self.deal.waterfall_steps()):
                self.add(
                    (*base, "effect", "trap"),
                    "a trap effect needs a `trap_cash` step in a waterfall",
                )
        for i, f in enumerate(self.deal.fees):
            self.amount(("fees", i, "period_amount"), f.period_amount, before_triggers=True)
        claims = self._claims()
        for _w, path, ledger, step in self.deal.waterfall_steps():
            self.step(path, step, claims, ledger)
        rv = self.deal.revolving
        if rv is not None:
            if rv.pool is not None:
                self.ref(("revolving", "pool"), rv.pool, self.pools, "pool")
            for j, tpl in enumerate(rv.templates):
                if isinstance(tpl.rate, FloatingRate):
                    self.ref(
                        ("revolving", "templates", j, "rate", "index"),
                        tpl.rate.index,
                        list(self.deal.indices),
                        "index",
                    )
            buys: dict[str, int] = {}
            for w, path, _ledger, s in self.deal.waterfall_steps():
                if s.kind == "buy_assets":
                    buys[w] = buys.get(w, 0) + 1
                    if buys[w] == 2:
                        self.add(
                            (*path, "buy_assets"),
                            f"waterfall {w!r} buys assets twice",
                            "keep one `buy_assets` step per waterfall: it spends all the cash in hand",
                        )
            if not buys:
                self.add(
                    ("revolving",),
                    "no waterfall has a `buy_assets` step: nothing would be bought",
                    "add `- buy_assets: all` where purchases are paid",
                )
        alloc = self.deal.loss_allocation
        if alloc is not None and alloc.order is not None:
            seen: set[str] = set()
            for j, n in enumerate(alloc.order):
                self.ref(("loss_allocation", "order", j), n, self.tranches, "tranche")
                if n in seen:
                    self.add(("loss_allocation", "order", j), f"tranche {n!r} is listed twice")
                seen.add(n)

    def _claims(self) -> list[str]:
        out = list(self.fees)
        for t in self.tranches:
            out += [
                f"{t}.interest",
                f"{t}.principal",
                f"{t}.principal_at_final",
                f"{t}.principal_at_maturity",
            ]
        return out

    def step(self, path: tuple[Any, ...], step: Step, claims: list[str], ledger: str = "combined") -> None:
        kind, value = step.kind, step.value
        p = (*path, kind)
        if kind == "buy_assets" and self.deal.revolving is None:
            self.add(
                p,
                "`buy_assets` needs a `revolving:` section",
                "describe the revolving period and its templates",
            )
        if kind == "to_principal":
            if ledger != "income":
                self.add(
                    p,
                    "`to_principal` moves income cash to the principal ledger: it belongs in an "
                    "`income` list",
                    "give the waterfall `income:` and `principal:` lists and put this step in `income`",
                )
            self.amount(p, value)
        elif kind == "pay_fee_above_cap":
            capped = [f.name for f in self.deal.fees if f.cap_per_year is not None]
            for j, n in enumerate(value):
                where = self.written((*p, j), p)
                if n in self.fees and n not in capped:
                    self.add(where, f"fee {n!r} has no `cap_per_year`", "give the fee a cap_per_year")
                else:
                    self.ref(where, n, self.fees, "fee")
        if kind == "pay_fee":
            for j, n in enumerate(value):
                self.ref(self.written((*p, j), p), n, self.fees, "fee")
        elif kind == "pay_interest":
            for j, n in enumerate(value):
                self.ref(self.written((*p, j), p), n, self.tranches, "tranche")
        elif kind == "pay_principal":
            for j, n in enumerate(value.tranches):
                where = self.written((*p, "tranches", j), (*p, "tranches"), (*p, j), p)
                self.ref(where, n, self.tranches, "tranche")
            if value.down_to is not None:
                self.amount((*p, "down_to"), value.down_to)
        elif kind in ("fund_account", "trap_cash"):
            self.ref(p, value, self.accounts, "account")
        elif kind == "draw":
            self.ref((*p, "from"), value.source, self.accounts + self.support, "account or support")
            if any(x.name == value.source and isinstance(x, LiquiditySupport) for x in self.deal.support):
                self.add(
                    (*p, "from"),
                    f"{value.source!r} is a liquidity_support: it buys notes put back, and is not drawn",
                    "draw from an account, a deficiency_payment or a liquidity_facility",
                )
            for j, c in enumerate(value.covers):
                if c not in claims:
                    self.add(
                        self.written((*p, "covers", j), (*p, "covers")),
                        f"unknown claim {c!r}",
                        suggest(c, claims)
                        or "write TRANCHE.interest, TRANCHE.principal, TRANCHE.principal_at_maturity, "
                        "TRANCHE.principal_at_final or a fee name",
                    )
        elif kind == "repay_liquidity":
            self.ref(p, value, self.liquidity, "liquidity facility")
        elif kind == "reimburse":
            self.ref(p, value, self.support, "support")
        elif kind == "pay_residual":
            self.ref(p, value, self.tranches, "tranche")
        elif kind in ("pay_hedge", "pay_hedge_termination"):  # ---- hedges
            self.ref(p, value, [h.name for h in self.deal.hedges], "hedge")

    def loss_cover(self) -> None:
        """Payers and insurers are obligors; each covered name is a pool, an asset id or an
        obligor with loans or leases; no asset is covered twice."""
        deal = self.deal
        assets: list[tuple[str, str, str]] = []  # (pool, id, obligor) of each covered kind of asset
        for pool in deal.pools:
            for a in (*pool.loans, *pool.leases):
                assets.append((pool.name, a.id or "", a.obligor))
            tape = self.tapes.get(pool.name)
            if tape is not None:
                assets.extend((pool.name, "", o) for o in tape.obligor_names())
        ids = [i for _p, i, _o in assets if i]
        owners = [o for _p, _i, o in assets]
        fixed = [(pool.name, r.obligor) for pool in deal.pools for r in pool.royalties if r.kind == "fixed"]
        targets = list(dict.fromkeys([*self.pools, *ids, *owners, *(o for _p, o in fixed)]))
        covered_by: dict[str, str] = {}
        for i, cover in enumerate(deal.loss_cover):
            base = ("loss_cover", i)
            payers = getattr(cover, "payers", None)
            if payers is not None:
                for j, payer in enumerate(payers):
                    self.ref((*base, "payers", j, "obligor"), payer.obligor, self.obligors, "obligor")
            else:
                self.ref((*base, "insurer"), cover.insurer, self.obligors, "obligor")
            for j, name in enumerate(cover.covers):
                path = self.written((*base, "covers", j), (*base, "covers"))
                if name not in targets:
                    self.add(
                        path,
                        f"unknown pool, loan or obligor {name!r}",
                        suggest(name, targets) or "name a pool, a loan or lease id, or a borrower",
                    )
                    continue
                hit = {
                    f"{p}/{ident}/{o}"
                    for p, ident, o in assets + [(p, "", o) for p, o in fixed]
                    if name in (p, ident, o)
                }
                twice = sorted(covered_by[k] for k in hit if covered_by.get(k, cover.name) != cover.name)
                if twice:
                    self.add(
                        path,
                        f"{name!r} is already covered by {twice[0]!r}: an asset has at most one loss cover",
                        "cover each loan in one entry (an entry may have several payers)",
                    )
                for k in hit:
                    covered_by.setdefault(k, cover.name)

    # ---- hedges
    def hedges(self) -> None:
        """Counterparties are obligors, indices exist, dates lie in the deal's life, and the
        waterfalls pay what the trust can owe each hedge."""
        info = self.deal.deal
        indices = list(self.deal.indices)
        steps = {
            (s.kind, s.value)
            for *_, s in self.deal.waterfall_steps()
            if s.kind in ("pay_hedge", "pay_hedge_termination")
        }
        names = [h.name for h in self.deal.hedges]
        misspelt = any(v not in names for _k, v in steps)  # reported at the step; no second error
        seen: set[str] = set()
        for i, h in enumerate(self.deal.hedges):
            base = ("hedges", i)
            if h.name in seen:
                self.add((*base, "name"), f"duplicate name {h.name!r}", "names must be unique")
            seen.add(h.name)
            self.ref((*base, "counterparty"), h.counterparty, self.obligors, "obligor")
            self.ref((*base, "index"), h.index, indices, "index")
            self.amount((*base, "notional"), h.notional)
            start = h.start_date or info.closing_date
            end = h.end_date or info.legal_final_date
            for key, day in (("start_date", h.start_date), ("end_date", h.end_date)):
                if day is not None and not info.closing_date <= day <= info.legal_final_date:
                    first, last = info.closing_date.isoformat(), info.legal_final_date.isoformat()
                    self.add(
                        (*base, key),
                        f"{key} {day.isoformat()} is outside the deal's life",
                        f"give a date from {first} to {last}",
                    )
            if h.start_date is not None and h.end_date is not None and not start < end:
                self.add((*base, "end_date"), "end_date must be after start_date")
            owes = isinstance(h, InterestRateSwap) or h.premium_rate > 0
            if owes and not misspelt and ("pay_hedge", h.name) not in steps:
                self.add(
                    (*base, "name"),
                    f"no waterfall pays what the trust owes hedge {h.name!r}",
                    f"add a step `- pay_hedge: {h.name}` where the deal ranks its net payment",
                )
            if (
                isinstance(h, InterestRateSwap)
                and not misspelt
                and ("pay_hedge_termination", h.name) not in steps
            ):
                self.add(
                    (*base, "name"),
                    f"no waterfall pays a termination amount the trust owes swap {h.name!r}",
                    f"add a step `- pay_hedge_termination: {h.name}` (usually junior)",
                )

    def scenarios(self) -> None:
        from ipabs.deal.calendar import deal_calendar_dates

        periods = len(deal_calendar_dates(self.deal.deal).payments)
        for name, sc in self.deal.scenarios.items():
            base = ("scenarios", name)
            for ob, when in sc.defaults.obligors.items():
                self.ref((*base, "defaults", "obligors", ob), ob, self.obligors, "obligor", key=True)
                if isinstance(when, int) and when > periods:
                    self.add(
                        (*base, "defaults", "obligors", ob),
                        f"period {when} is after the legal final date: the deal has {periods} periods",
                        "give a period number from 1, or a date",
                    )
            for i, ov in enumerate(sc.overrides):
                if ov.pool is not None:
                    self.ref((*base, "overrides", i, "pool"), ov.pool, self.pools, "pool")
                if ov.obligor is not None:
                    self.ref((*base, "overrides", i, "obligor"), ov.obligor, self.obligors, "obligor")
                if ov.defaults is not None and ov.defaults.obligors:
                    self.add(
                        (*base, "overrides", i, "defaults", "obligors"),
                        "name defaulting obligors in the scenario's own `defaults.obligors`",
                    )

    # ---- delinquency
    def advances(self) -> None:
        adv = self.deal.servicer_advances
        if adv is not None:
            self.ref(("servicer_advances", "servicer"), adv.servicer, self.obligors, "obligor")

    def run(self) -> list[Issue]:
        self.unique()
        self.dates()
        self.assets()
        self.collateral()
        self.liabilities()
        self.loss_cover()
        self.hedges()
        self.advances()
        self.scenarios()
        return self.issues


def _pd_forms_differ(first: tuple[Any, ...], second: tuple[Any, ...]) -> bool:
    """Both give a PD for the obligor, but not in the same form (pd, pd_curve, cumulative_pd)."""
    a = tuple(v is not None for v in first[:3])
    b = tuple(v is not None for v in second[:3])
    return any(a) and any(b) and a != b


def _add_months(d: dt.date, months: int) -> dt.date:
    from ipabs.dates import add_months

    return add_months(d, months)


def cross_check(deal: Deal, smap: SourceMap, tapes: dict[str, Any] | None = None) -> list[Issue]:
    """Check references and consistency across the sections of a validated deal.

    Returns
    -------
    list of Issue
        Empty when the deal is consistent.
    """
    return [*_Checker(deal, smap, tapes or {}).run(), *_value_volatility_issues(deal, smap)]


def _value_volatility_issues(deal: Deal, smap: SourceMap) -> list[Issue]:
    """A pledged IP's ``value_volatility`` for which the deal's beta recovery model has no
    value factor (its sd ``value_mean x sqrt(exp(volatility^2) - 1)`` must stay below
    ``sqrt(value_mean x (1 - value_mean))``)."""
    from ipabs.deal.risk import beta_feasible, beta_value_sd

    if deal.risk is None or deal.risk.recovery.model != "beta":
        return []
    m = deal.risk.recovery.value_mean
    out = []
    for p, pool in enumerate(deal.pools):
        for section, assets in (("loans", pool.loans), ("leases", pool.leases)):
            for i, asset in enumerate(assets):
                ip = asset.pledged_ip
                if ip is None or ip.value_volatility is None:
                    continue
                sd = beta_value_sd(m, ip.value_volatility)
                if not beta_feasible(m, sd):
                    path = ("pools", p, section, i, "pledged_ip", "value_volatility")
                    line, col = smap.locate(path)
                    out.append(
                        Issue(
                            smap.file,
                            line,
                            col,
                            format_path(path),
                            f"under the beta recovery model (value_mean {m:g}) this volatility gives the "
                            f"value factor the sd {sd:.4f}, which must lie in "
                            f"(0, {(m * (1.0 - m)) ** 0.5:.4f})",
                            "lower the volatility, or use risk.recovery.model: lognormal",
                        )
                    )
    return out


def _last_payment_dates(deal: Deal, tapes: dict[str, Any]) -> list[tuple[str, str, dt.date]]:
    """(pool, obligor, last contractual payment date) of every loan and lease: the last date on
    which it can default."""
    closing = deal.deal.cut_off  # terms run from the cut-off
    out: list[tuple[str, str, dt.date]] = []
    for pool in deal.pools:
        for loan in pool.loans:
            end = loan.maturity_date or _add_months(closing, loan.term_months or 0)
            out.append((pool.name, loan.obligor, end))
        for lease in pool.leases:
            months = lease.term_months
            if months is None:
                months = len(lease.rents or []) * MONTHS_PER_PERIOD[lease.payment_frequency]
            out.append((pool.name, lease.obligor, _add_months(closing, months)))
        tape = tapes.get(pool.name)
        if tape is not None:
            frame = tape.frame
            for obligor, mat, term in zip(
                frame["obligor"], frame["maturity_date"], frame["term_months"], strict=True
            ):
                # a row gives a term (an integer; <NA> otherwise) or a maturity (NaT otherwise)
                if isinstance(term, numbers.Integral):
                    out.append((pool.name, str(obligor), _add_months(closing, int(term))))
                elif hasattr(mat, "date") and mat == mat:
                    out.append((pool.name, str(obligor), mat.date()))
    return out


def recovery_warnings(
    deal: Deal,
    smap: SourceMap,
    tapes: dict[str, Any] | None = None,
    risk: Any = None,
    risk_map: SourceMap | None = None,
) -> list[Issue]:
    """Warnings (not errors) about recoveries that the recovery lag pushes past the legal final
    date, where they are lost: for each scenario's recovery (and its overrides) and for the
    risk model's recovery (the deal's own ``risk`` section, or ``risk`` read from ``risk_map``'s
    file when given).

    A default can happen up to an asset's last contractual payment; its recovery is paid
    ``lag_months`` after the end of that payment period.

    Returns
    -------
    list of Issue
        One per recovery assumption that loses recoveries; empty when none does.
    """
    from ipabs.dates import add_months
    from ipabs.deal.calendar import deal_calendar_dates

    info = deal.deal
    legal_final = info.legal_final_date
    dates = deal_calendar_dates(info).collection_ends
    assets = _last_payment_dates(deal, tapes or {})
    out: list[Issue] = []

    def check(
        where: SourceMap,
        path: tuple[Any, ...],
        lag: int,
        recovers: bool,
        pool: str | None,
        obligor: str | None,
    ) -> None:
        if not recovers or lag <= 0:
            return
        # each asset's last payment date and the end of the period collecting it
        ends = [
            (end, next((d for d in dates if d >= end), legal_final))
            for p, o, end in assets
            if (pool is None or p == pool) and (obligor is None or o == obligor)
        ]
        lost = [end for end, period_end in ends if add_months(period_end, lag) > legal_final]
        if not lost:
            return
        # the last period end whose defaults still recover by legal final
        cutoff = max((d for d in dates if add_months(d, lag) <= legal_final), default=None)
        when = (
            f"defaults in periods ending after {cutoff.isoformat()}"
            if cutoff is not None
            else "every default"
        )
        what = (
            f"a recovery lag of {lag} months"
            if path[-1] == "lag_months"
            else (f"the last recovery instalment {lag} months after default")
        )
        message = (
            f"with {what}, recoveries on {when} fall after the legal final "
            f"date {legal_final.isoformat()} and are lost; {len(lost)} of {len(ends)} assets can still "
            f"default then (the last payment is on {max(lost).isoformat()})"
        )
        hint = f"shorten {path[-1]} or move legal_final_date if those recoveries should count"
        line, col = where.locate(path)  # the nearest written parent when the lag is left out
        out.append(Issue(where.file, line, col, format_path(path), message, hint))

    from ipabs.deal.assumptions import last_recovery_months

    def field(r: Any) -> str:  # where the recovery's timing is written
        return "lag_months" if r.timing is None else "timing"

    for name, sc in deal.scenarios.items():
        base = ("scenarios", name)
        rec = sc.recovery
        path = (*base, "recovery", field(rec))
        check(smap, path, last_recovery_months(rec), rec.rate > 0, None, None)
        for i, ov in enumerate(sc.overrides):
            if ov.recovery is not None:
                r = ov.recovery
                path = (*base, "overrides", i, "recovery", field(r))
                check(smap, path, last_recovery_months(r), r.rate > 0, ov.pool, ov.obligor)
    model = risk if risk is not None else deal.risk
    if model is not None:
        rec = model.recovery
        recovers = rec.model != "constant" or rec.rate > 0
        path = ("risk", "recovery", field(rec))
        where = risk_map if risk_map is not None else smap
        check(where, path, last_recovery_months(rec), recovers, None, None)
    return out


# ---- calendars
def calendar_warnings(deal: Deal, smap: SourceMap) -> list[Issue]:
    """A warning when the deal's dates run past the last year of the exchange holiday calendar:
    from the next year on, only weekends and the deal's own holidays are non-business days."""
    cal = deal.deal.calendar
    if cal is None or cal.holidays != "china_exchange":
        return []
    if cal.business_day == "unadjusted" and cal.determination_dates is None:
        return []  # no date moves to a business day
    from ipabs.calendars import exchange_holidays

    _days, last = exchange_holidays()
    final = deal.deal.legal_final_date
    if final.year <= last:
        return []
    path = ("deal", "calendar", "holidays")
    line, col = smap.locate(path)
    return [
        Issue(
            smap.file,
            line,
            col,
            format_path(path),
            f"the exchange holiday calendar is known to the end of {last}; dates from {last + 1} to the "
            f"legal final date ({final}) are adjusted for weekends only",
            "list later holidays in deal.calendar.extra_holidays once they are published",
        )
    ]
