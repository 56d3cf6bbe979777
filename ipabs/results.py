"""Results of a deterministic run as pandas DataFrames (columns documented in docs/outputs.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ipabs.deal.schema import MONTHS_PER_PERIOD
from ipabs.engine import layout as L
from ipabs.engine.compile import CompiledModel
from ipabs.engine.layout import C_GUARANTEE, C_INSURANCE, C_RECOVERY, C_RISK_SHARING, COLLECTION_COLUMNS
from ipabs.engine.metrics_numba_fns import present_value, weighted_average_life, yield_at_price
from ipabs.io import json_value, write_tables

if TYPE_CHECKING:
    from ipabs.report.charts import RunPlots


def conservation_residual(tables: L.WaterfallTables) -> np.ndarray:
    """Per-period cash-conservation residual (should be ~0).

    ``brought forward + collections + call proceeds + hedge receipts + servicer advances -
    advances repaid + support draws + account withdrawals - payments - purchase price - account
    deposits - carried forward``.
    """
    d = tables.deal
    return (
        d[:, L.D_CARRY_IN]
        + d[:, L.D_COLLECTIONS]
        + d[:, L.D_HEDGE_RECEIVED]
        + d[:, L.D_CALL_PROCEEDS]
        + d[:, L.D_ADVANCED_INTEREST]
        + d[:, L.D_ADVANCED_PRINCIPAL]
        - d[:, L.D_ADVANCES_REPAID]
        + d[:, L.D_SUPPORT_DRAWS]
        + d[:, L.D_ACCOUNT_WITHDRAWALS]
        - d[:, L.D_PAYMENTS]
        - d[:, L.D_PURCHASE_PRICE]
        - d[:, L.D_ACCOUNT_DEPOSITS]
        - d[:, L.D_CARRY_OUT]
    )


@dataclass(frozen=True)
class RunResult:
    """A deterministic run: per-tranche summary and per-period tables.

    Attributes
    ----------
    deal_name, scenario : str
    summary : DataFrame
        One row per tranche (index ``tranche``).
    periods : DataFrame
        One row per payment period: collections, deal cash, then ``<name>.<field>`` columns
        for every tranche, fee, account, support and trigger.
    tranche_flows : DataFrame
        Tidy: one row per (period, tranche).
    collateral : DataFrame
        Tidy: one row per (period, pool).
    triggers : DataFrame
        One row per trigger: when it was first breached and active.
    tables : WaterfallTables
        The raw kernel output.
    collections : ndarray, shape (P, T, C)
        The raw asset cash flows per pool.
    """

    deal_name: str
    scenario: str
    summary: pd.DataFrame
    periods: pd.DataFrame
    tranche_flows: pd.DataFrame
    collateral: pd.DataFrame
    triggers: pd.DataFrame
    tables: L.WaterfallTables
    collections: np.ndarray

    @property
    def plot(self) -> RunPlots:
        """Charts of this run (matplotlib figures; see docs/charts.md), e.g. ``result.plot.balances()``."""
        from ipabs.report.charts import RunPlots

        return RunPlots(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: deal, scenario, ``tranches`` (list of objects) and ``triggers``."""

        tranches = [
            {"name": name, **{k: json_value(v) for k, v in row.items()}}
            for name, row in self.summary.iterrows()
        ]
        triggers = [{k: json_value(v) for k, v in row.items()} for _, row in self.triggers.iterrows()]
        return {"deal": self.deal_name, "scenario": self.scenario, "tranches": tranches, "triggers": triggers}

    def files(self) -> dict[str, pd.DataFrame]:
        """File name -> table, as :meth:`write` writes them (each as CSV and Parquet)."""
        frames = {
            "summary": self.summary.reset_index(),
            "periods": self.periods,
            "tranche_flows": self.tranche_flows,
            "collateral": self.collateral,
            "triggers": self.triggers,
        }
        return {f"{name}.{ext}": frame for name, frame in frames.items() for ext in ("csv", "parquet")}

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the tables as CSV and Parquet into ``out_dir`` (created if needed).

        The files appear all together or not at all, even when the run is interrupted (see
        :func:`ipabs.io.write_tables`). Returns the paths written.
        """
        return write_tables(out_dir, self.files())


def _times(model: CompiledModel) -> np.ndarray:
    return (model.grid[1:] - model.grid[0]) / 365.0


def tranche_summary(model: CompiledModel, tables: L.WaterfallTables, start: int = 0) -> pd.DataFrame:
    """Per-tranche metrics of one run; from period ``start`` on (0-based), times measured from
    the payment date before it and prices the tranches' balances then (a re-projection)."""
    spec = model.spec
    freq = 12 // MONTHS_PER_PERIOD[spec.deal.payment_frequency]
    times = _times(model)
    dates = model.payment_dates
    if start > 0:
        times = times[start:] - times[start - 1]
        dates = dates[start:]
        tables = slice_tables(tables, start)
    rows = []
    tr = tables.tranche
    for k, name in enumerate(model.tranche_names):
        # a re-projection prices and measures losses against the balance on the report date
        orig = float(model.cd.tr_balance[k]) if start == 0 else float(tr[0, k, L.TR_BALANCE_START])
        interest = tr[:, k, L.TR_INTEREST_PAID]
        principal = tr[:, k, L.TR_PRINCIPAL_PAID]
        residual = tr[:, k, L.TR_RESIDUAL_PAID]
        cash = interest + principal + residual
        principal_loss = float(tr[-1, k, L.TR_BALANCE_END] + tr[-1, k, L.TR_WRITTEN_DOWN])
        interest_loss = float(tr[-1, k, L.TR_INTEREST_ARREARS])
        loss = principal_loss + interest_loss
        coupon = float(model.cd.tr_rate[k, 0])
        paid_idx = np.nonzero(cash > 1e-9)[0]
        disc = present_value(times[-1:], np.array([loss]), coupon, freq) if loss > 0 else 0.0
        rows.append(
            {
                "tranche": name,
                "original_balance": float(model.cd.tr_balance[k]),
                **({} if start == 0 else {"report_date_balance": orig}),
                "coupon": coupon,
                "interest_paid": float(interest.sum()),
                "principal_paid": float(principal.sum()),
                "residual_paid": float(residual.sum()),
                "support_received": float(tr[:, k, L.TR_SUPPORT_RECEIVED].sum()),
                "principal_loss": principal_loss,
                "interest_shortfall": interest_loss,
                "loss": loss,
                "loss_pct": loss / orig if orig > 0 else 0.0,
                "discounted_loss": float(disc),
                "wal_years": float(weighted_average_life(times, principal)),
                "yield": float(yield_at_price(times, cash, orig, (1.0 + coupon / freq) ** freq - 1.0))
                if orig > 0
                else np.nan,
                "final_payment_date": dates[paid_idx[-1]] if len(paid_idx) else None,
            }
        )
    return pd.DataFrame(rows).set_index("tranche")


def collected(coll: np.ndarray, tables: L.WaterfallTables) -> np.ndarray:
    """The asset cash the deal actually kept: after a clean-up call the sold assets' flows stop
    (only recoveries, guarantee and loss-cover payments on earlier defaults still arrive)."""
    called = np.nonzero(tables.deal[:, L.D_CALLED] > 0)[0]
    if not len(called):
        return coll
    out = coll.copy()
    t = int(called[0])  # the call period keeps its flows; its end balance is what was sold
    keep = np.zeros(out.shape[2], dtype=bool)
    keep[[C_RECOVERY, C_GUARANTEE, C_RISK_SHARING, C_INSURANCE]] = True
    out[:, t + 1 :, ~keep] = 0.0
    return out


def slice_tables(tables: L.WaterfallTables, start: int) -> L.WaterfallTables:
    """The rows of every table from period ``start`` (0-based) on."""
    return L.WaterfallTables(*(x[start:] for x in tables))


def build_result(
    model: CompiledModel, scenario: str, coll: np.ndarray, tables: L.WaterfallTables, start: int = 0
) -> RunResult:
    """Assemble the DataFrames of a run from the raw arrays; a run from a report date keeps
    its periods from ``start`` (0-based: the period after the report date) on."""
    summary = tranche_summary(model, tables, start)
    coll = collected(coll, tables)[:, start:]
    tables = slice_tables(tables, start)
    dates = model.payment_dates[start:]
    base = pd.DataFrame(
        {"period": np.arange(start + 1, model.n_periods + 1), "payment_date": pd.to_datetime(dates)}
    )
    total = coll.sum(axis=0)
    cols: dict[str, Any] = {f"pool.{c}": total[:, i] for i, c in enumerate(COLLECTION_COLUMNS)}
    for i, c in enumerate(L.DEAL_FIELDS):
        cols[f"deal.{c}"] = tables.deal[:, i]
    cols["deal.waterfall"] = [model.waterfall_names[int(w)] for w in tables.deal[:, L.D_WATERFALL]]
    groups = (
        (model.tranche_names, tables.tranche, L.TRANCHE_FIELDS),
        (model.fee_names, tables.fee, L.FEE_FIELDS),
        (model.account_names, tables.account, L.ACCOUNT_FIELDS),
        (model.support_names, tables.support, L.SUPPORT_FIELDS),
        (model.trigger_names, tables.trigger, L.TRIGGER_FIELDS),
        (model.hedge_names, tables.hedge, L.HEDGE_FIELDS),  # ---- hedges
    )
    for names, arr, fields in groups:
        for j, name in enumerate(names):
            for i, f in enumerate(fields):
                cols[f"{name}.{f}"] = arr[:, j, i]
    periods = pd.concat([base, pd.DataFrame(cols)], axis=1)

    tf = []
    for k, name in enumerate(model.tranche_names):
        part = base.copy()
        part.insert(2, "tranche", name)
        for i, f in enumerate(L.TRANCHE_FIELDS):
            part[f] = tables.tranche[:, k, i]
        tf.append(part)
    tranche_flows = pd.concat(tf, ignore_index=True)

    cf = []
    for p, name in enumerate(model.pool_names):
        part = base.copy()
        part.insert(2, "pool", name)
        for i, c in enumerate(COLLECTION_COLUMNS):
            part[c] = coll[p, :, i]
        cf.append(part)
    collateral = pd.concat(cf, ignore_index=True)

    trig_rows = []
    for g, trig in enumerate(model.spec.triggers):
        active = np.nonzero(tables.trigger[:, g, L.TRG_ACTIVE] > 0)[0]
        breached = np.nonzero(tables.trigger[:, g, L.TRG_BREACHED] > 0)[0]
        trig_rows.append(
            {
                "trigger": trig.name,
                "kind": trig.kind,
                "first_breached_period": int(breached[0]) + 1 + start if len(breached) else None,
                "first_active_period": int(active[0]) + 1 + start if len(active) else None,
                "first_active_date": dates[active[0]] if len(active) else None,
                "periods_active": len(active),
            }
        )
    triggers = pd.DataFrame(
        trig_rows,
        columns=[
            "trigger",
            "kind",
            "first_breached_period",
            "first_active_period",
            "first_active_date",
            "periods_active",
        ],
    )
    # periods are whole numbers; a trigger that never fired has none (null), not nan
    for column in ("first_breached_period", "first_active_period"):
        triggers[column] = triggers[column].astype("Int64")
    triggers["periods_active"] = triggers["periods_active"].astype("int64")
    return RunResult(
        deal_name=model.spec.deal.name,
        scenario=scenario,
        summary=summary,
        periods=periods,
        tranche_flows=tranche_flows,
        collateral=collateral,
        triggers=triggers,
        tables=tables,
        collections=coll,
    )
