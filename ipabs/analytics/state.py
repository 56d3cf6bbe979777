"""The deal's state after a period of its own deterministic run, as a state file would give it.

:func:`state_at` runs a deterministic scenario and records, after period K's payments, what a
trustee report would: tranche balances and arrears, accounts, the ledger, triggers, support
used, and each loan's balance and status. Per-loan figures come from the same collections
kernel as the run, each asset collected into a pool of its own (the run sums them per pool);
nothing is re-derived here. :func:`write_state` writes the state file (and a loan tape beside
it when there are many loans). docs/surveillance.md describes the format.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ipabs.deal.load import LoadedDeal
from ipabs.deal.state import (
    StateFee,
    StateFile,
    StateLedgers,
    StateLoan,
    StateRoyalty,
    StateSupport,
    StateTranche,
    StateTrigger,
    deal_assets,
    deal_royalty_ids,
    has_ledgers,
)
from ipabs.engine import layout as L
from ipabs.engine.compile import CompiledModel
from ipabs.errors import IpabsError

TAPE_ABOVE = 50
"""A written state puts its loans in a CSV tape beside it when it has more than this many."""

REPAID_SHARE = 1e-9
"""A balance at most this share of the loan's balance at closing is rounding dust: repaid
(as the collections kernel's own threshold)."""

TAPE_COLUMNS = (
    "id",
    "balance",
    "status",
    "days_past_due",
    "default_date",
    "recovered",
    "appraised_value",
    "arrears_interest",
    "arrears_principal",
)


def _per_asset_collections(model: CompiledModel, inputs: Any) -> np.ndarray:
    """Collections of each asset, then of each running royalty stream, as if each were a pool
    of its own: the run's collections kernel on the same inputs, shape (A + R, T, C)."""
    from ipabs.api import collections

    n_assets = len(model.assets)
    n_roy = len(model.royalties)
    own = dataclasses.replace(
        model,
        assets=dataclasses.replace(model.assets, pool=np.arange(n_assets, dtype=np.int64)),
        royalties=dataclasses.replace(
            model.royalties, pool=np.arange(n_assets, n_assets + n_roy, dtype=np.int64)
        ),
        pool_names=[f"#{i}" for i in range(n_assets + n_roy)],
    )
    return collections(own, inputs=inputs)


def state_at(
    deal: LoadedDeal | CompiledModel | str | Path, period: int, scenario: str | None = None
) -> StateFile:
    """The state of a deal after period ``period``'s payments under a deterministic scenario.

    Parameters
    ----------
    deal : LoadedDeal, CompiledModel, str or Path
        The deal (a deal file, loaded or compiled).
    period : int
        Payment period, 1 for the first payment date.
    scenario : str, optional
        Scenario name (default: the deal's first).

    Returns
    -------
    StateFile
        ``report_date`` the period's payment date; tranches, accounts, ledgers, triggers and
        support from the run's tables at the period; each loan (and lease) with its
        performing balance (``current``), or ``defaulted`` with the principal it defaulted
        with, the payment date of the period it defaulted in and the recoveries received by
        the period, or ``repaid``; each royalty stream with what it paid to date.

    Raises
    ------
    IpabsError
        When the period is outside the deal's, or when the run's state cannot be written loan
        by loan: a scenario that defaults or delays a fraction of a loan (a CDR, an SDA curve,
        a delinquency chain: expected values, not one loan's fate), a pool sold by a call, or
        assets bought in a revolving period.

    Examples
    --------
    >>> state = state_at("scenarios/caohejing_ip_pledge.yaml", 2, "base")  # doctest: +SKIP
    >>> state.tranches["senior"].balance  # doctest: +SKIP
    """
    from ipabs.api import _model, collections, run
    from ipabs.risk.scenario import scenario_inputs

    model = _model(deal)
    spec = model.spec
    name = scenario if scenario is not None else next(iter(spec.scenarios))
    if name not in spec.scenarios:
        raise IpabsError(f"no scenario {name!r}; known scenarios: {', '.join(spec.scenarios)}")
    n = model.n_periods
    if not 1 <= period <= n:
        raise IpabsError(f"period {period} is outside the deal's periods 1 to {n}")
    t = period - 1
    dates = model.payment_dates

    result = run(model, name)
    tables = result.tables
    inputs = scenario_inputs(model, name)
    per = _per_asset_collections(model, inputs)
    n_assets = len(model.assets)
    pooled = np.zeros((len(model.pool_names), n, L.N_COLLECTION_COLUMNS))
    np.add.at(pooled, model.assets.pool, per[:n_assets])
    np.add.at(pooled, model.royalties.pool, per[n_assets:])
    cols = [L.C_BALANCE_END, L.C_DEFAULT, L.C_RECOVERY, L.C_ROYALTY]
    if not np.allclose(pooled[..., cols], collections(model, inputs=inputs)[..., cols], rtol=1e-9, atol=1e-6):
        raise AssertionError("per-asset collections do not add up to the run's")  # pragma: no cover

    deal_rows = tables.deal[: t + 1]
    if deal_rows[:, L.D_CALLED].any():
        k = int(np.flatnonzero(deal_rows[:, L.D_CALLED])[0]) + 1
        raise IpabsError(
            f"scenario {name!r}: the pool is sold by a call in period {k} ({dates[k - 1]}); "
            f"nothing is left to record after it: give a period before {k}"
        )
    if deal_rows[:, L.D_PURCHASED].sum() > 0.0:
        raise IpabsError(
            f"scenario {name!r}: the revolving period buys assets by period {period}, which are not "
            "loans of the deal: a state records the deal's own loans; give a period before the first purchase"
        )

    # ---- liabilities
    tranches = {}
    for j, tname in enumerate(model.tranche_names):
        row = tables.tranche[t, j]
        tranches[tname] = StateTranche(
            balance=float(row[L.TR_BALANCE_END]),
            interest_arrears=float(row[L.TR_INTEREST_ARREARS]),
            written_down=None if spec.loss_allocation is None else float(row[L.TR_WRITTEN_DOWN]),
        )
    accounts = {a: float(tables.account[t, k, L.ACC_END]) for k, a in enumerate(model.account_names)}
    fees = {
        f: StateFee(arrears=float(tables.fee[t, k, L.FEE_ARREARS]))
        for k, f in enumerate(model.fee_names)
        if tables.fee[t, k, L.FEE_ARREARS] > 0.0
    }
    triggers = {}
    for g, gname in enumerate(model.trigger_names):
        breached = tables.trigger[: t + 1, g, L.TRG_BREACHED] > 0.0
        run = 0
        while run <= t and breached[t - run]:
            run += 1
        triggers[gname] = StateTrigger(
            breached=bool(breached[t]),
            active=bool(tables.trigger[t, g, L.TRG_ACTIVE] > 0.0),
            consecutive_breaches=run,
        )
    support = {
        s: StateSupport(
            drawn=float(tables.support[t, k, L.SUP_CUMULATIVE_DRAW]),
            outstanding=float(tables.support[t, k, L.SUP_UNREIMBURSED]),
        )
        for k, s in enumerate(model.support_names)
    }
    ledgers = None
    if has_ledgers(model.deal):
        ledgers = StateLedgers(principal_deficiency=float(tables.deal[t, L.D_PRINCIPAL_DEFICIENCY]))

    # ---- assets, one by one
    assets = deal_assets(model.deal)
    if len(assets) != n_assets:  # pragma: no cover - the two follow the same order by construction
        raise AssertionError("the deal's assets and the compiled assets differ")
    loans = []
    royalties: dict[str, StateRoyalty] = {}
    fixed_collected: list[float] = []
    for a, asset in enumerate(assets):
        flows = per[a, : t + 1]
        if asset.kind == "licence":
            paid = flows[:, [L.C_INTEREST, L.C_SCHED_PRINCIPAL, L.C_PREPAYMENT]].sum()
            fixed_collected.append(float(paid))
            continue
        dust = REPAID_SHARE * max(asset.balance, 1.0)
        performing = float(flows[t, L.C_BALANCE_END])
        defaulted = float(flows[:, L.C_DEFAULT].sum())
        late = float(flows[t, [L.C_DELINQUENT_30, L.C_DELINQUENT_60, L.C_DELINQUENT_90]].sum())
        hit = np.flatnonzero(flows[:, L.C_DEFAULT] > dust)
        # a loan defaults whole, once: defaults in several periods, or payments after the
        # default, are an expected-value rate's fractions (a CDR or SDA curve)
        fractional = len(hit) > 1 or (
            len(hit) == 1
            and float(flows[hit[0] :, [L.C_INTEREST, L.C_SCHED_PRINCIPAL, L.C_PREPAYMENT]].sum()) > dust
        )
        if late > dust or (performing > dust and defaulted > dust) or fractional:
            what = "falls behind on its payments" if late > dust else "defaults"
            raise IpabsError(
                f"scenario {name!r}: a fraction of loan {asset.id!r} {what} by period {period} (an "
                "expected-value rate, not one loan's fate); a state records each loan as performing, "
                "delinquent, defaulted or repaid: use a scenario that names the defaulting obligors "
                "(`defaults: {obligors: {NAME: PERIOD}}`) or has no defaults"
            )
        if performing > dust:
            loans.append(StateLoan(id=asset.id, balance=performing, status="current"))
        elif defaulted > dust:
            k = int(np.flatnonzero(flows[:, L.C_DEFAULT] > dust)[0])
            loans.append(
                StateLoan(
                    id=asset.id,
                    balance=defaulted,
                    status="defaulted",
                    default_date=dates[k],
                    recovered=float(flows[:, L.C_RECOVERY].sum()),
                )
            )
        else:
            loans.append(StateLoan(id=asset.id, balance=0.0, status="repaid"))
    running = per[n_assets:, : t + 1, L.C_ROYALTY].sum(axis=1)
    for rid, paid in zip(deal_royalty_ids(model.deal), [*fixed_collected, *running.tolist()], strict=True):
        royalties[rid] = StateRoyalty(collected=float(paid))

    return StateFile(
        report_date=dates[t],
        period=period,
        tranches=tranches,
        accounts=accounts,
        fees=fees,
        cumulative_defaults=float(tables.deal[t, L.D_CUMULATIVE_DEFAULTS]),
        ledgers=ledgers,
        triggers=triggers,
        support_used=support,
        loans=loans,
        royalties=royalties,
    )


# --------------------------------------------------------------------------- writing


def _plain(state: StateFile, exclude: set[str]) -> dict[str, Any]:
    """The state as plain YAML values: fields left at their defaults are omitted."""
    return state.model_dump(mode="python", exclude=exclude, exclude_defaults=True)


def _loan_row(loan: StateLoan) -> dict[str, Any]:
    return loan.model_dump(mode="python", exclude_defaults=True)


def dump_state(state: StateFile, tape: str | None = None, header: str = "") -> tuple[str, str | None]:
    """A state as YAML text, and its loans as CSV text when ``tape`` names the file.

    Parameters
    ----------
    state : StateFile
    tape : str, optional
        File name of the loan tape (relative to the state file); None: loans inline.
    header : str
        Comment lines to start the YAML with.

    Returns
    -------
    yaml_text, csv_text or None
    """
    import yaml

    class _Dumper(yaml.SafeDumper):
        """Plain YAML: a value repeated (two loans' default date) is written again, not aliased."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    record = _plain(state, {"loans"})
    if tape is None:
        record["loans"] = [_loan_row(loan) for loan in state.loans]  # type: ignore[union-attr]
        csv_text = None
    else:
        record["loans"] = {"tape": {"path": tape}}
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=TAPE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for loan in state.loans:  # type: ignore[union-attr]
            row = _loan_row(loan)
            writer.writerow(
                {
                    k: ("" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                    for k in TAPE_COLUMNS
                }
            )
        csv_text = buf.getvalue()
    text = yaml.dump(
        record, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return header + text, csv_text


def write_state(
    state: StateFile, out: str | Path, *, tape: bool | None = None, header: str = ""
) -> list[Path]:
    """Write a state file (and its loan tape ``<name>.loans.csv`` beside it) all together or
    not at all: both are written to temporary files first and renamed into place, the tape
    first, so that a state file never names a tape that is not there.

    Parameters
    ----------
    state : StateFile
    out : str or Path
        The YAML file to write.
    tape : bool, optional
        Put the loans in a tape: True, False, or None (when there are more than
        :data:`TAPE_ABOVE`).
    header : str
        Comment lines to start the YAML with.

    Returns
    -------
    list of Path
        The files written.
    """
    from ipabs.io import _signals_held

    target = Path(out)
    loans = state.loans if isinstance(state.loans, list) else []
    use_tape = len(loans) > TAPE_ABOVE if tape is None else tape
    tape_path = target.with_name(f"{target.stem}.loans.csv") if use_tape else None
    text, csv_text = dump_state(state, tape_path.name if tape_path else None, header)
    files = [(target, text)] if tape_path is None else [(tape_path, csv_text or ""), (target, text)]
    temps: list[Path] = []
    try:
        for final, content in files:
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            temps.append(Path(name))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(content)
            os.chmod(name, 0o666 & ~_umask())
        with _signals_held():
            for (final, _content), tmp in zip(files, temps, strict=True):
                os.replace(tmp, final)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    return [f for f, _c in files]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
