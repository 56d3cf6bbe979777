"""The waterfall kernel: one path of a deal's priority of payments, period by period, step by
step. The deterministic run and every Monte Carlo path call this same function.

Per payment date, in order:

1. collect the period's asset cash (and exercise the clean-up call when the pool is small);
2. compute what is due: note interest (plus arrears), principal due, fees (plus arrears);
3. test the triggers and set the period's mode: sequential principal, trap share, waterfall;
4. release account balances above target (all of it at legal final or after acceleration);
5. run the steps of the active waterfall;
6. carry unpaid interest and fees as arrears and any unapplied cash to the next date.

A switching trigger (acceleration, event of default) makes the whole balance of every tranche
due. At the legal final date everything is due; what stays unpaid is the tranche's loss.
"""

from __future__ import annotations

import numpy as np

from ipabs._jit import njit
from ipabs.engine.layout import (
    ACC_DEPOSIT,
    ACC_END,
    ACC_START,
    ACC_TARGET,
    ACC_TRAP,
    ACC_WITHDRAWAL,
    AMT_FIXED,
    AMT_SCHEDULE,
    CLAIM_FEE,
    CLAIM_INTEREST,
    D_ACCOUNT_DEPOSITS,
    D_ACCOUNT_WITHDRAWALS,
    D_CALL_PROCEEDS,
    D_CALLED,
    D_CARRY_IN,
    D_CARRY_OUT,
    D_COLLECTIONS,
    D_CUMULATIVE_DEFAULTS,
    D_PAYMENTS,
    D_POOL_BALANCE,
    D_SEQUENTIAL,
    D_SUPPORT_DRAWS,
    D_TRAP_SHARE,
    D_WATERFALL,
    FEE_ANNUAL,
    FEE_ARREARS,
    FEE_DUE,
    FEE_PAID,
    FEE_PERIOD,
    LIMIT_DUE,
    LIMIT_PRINCIPAL_COLLECTIONS,
    OP_DRAW,
    OP_FUND_ACCOUNT,
    OP_PAY_FEE,
    OP_PAY_INTEREST,
    OP_PAY_PRINCIPAL,
    OP_PAY_RESIDUAL,
    OP_REPAY_LIQUIDITY,
    OP_TRAP_CASH,
    Q_BALANCE,
    Q_INTEREST_DUE,
    Q_NOTES_BALANCE,
    Q_ORIGINAL_BALANCE,
    Q_ORIGINAL_POOL_BALANCE,
    Q_POOL_BALANCE,
    Q_POOL_BALANCE_START,
    SUP_CUMULATIVE_DRAW,
    SUP_DEFICIENCY,
    SUP_DRAW,
    SUP_INTEREST_PAID,
    SUP_OUTSTANDING,
    SUP_REPAID,
    TR_BALANCE_END,
    TR_BALANCE_START,
    TR_INTEREST_ARREARS,
    TR_INTEREST_DUE,
    TR_INTEREST_PAID,
    TR_PRINCIPAL_DUE,
    TR_PRINCIPAL_PAID,
    TR_RESIDUAL_PAID,
    TR_SUPPORT_RECEIVED,
    TRG_ACTIVE,
    TRG_BREACHED,
    TRG_CUMULATIVE_DEFAULT,
    TRG_DSCR,
    TRG_INTEREST_SHORTFALL,
    TRG_OVERCOLLATERALISATION,
    TRG_RESERVE_BELOW_TARGET,
    TRG_VALUE,
)
from ipabs.risk.collections_numba_fns import (
    C_BALANCE_END,
    C_BALANCE_START,
    C_DEFAULT,
    C_GUARANTEE,
    C_INTEREST,
    C_PREPAYMENT,
    C_RECOVERY,
    C_ROYALTY,
    C_SCHED_PRINCIPAL,
)

EPS = 1e-6  # money below a millionth of a unit is rounding dust: never paid, never a shortfall
RATIO_TOL = 1e-12  # tolerance of ratio tests


@njit
def _group_sum(cd, values, g):  # type: ignore[no-untyped-def]
    s = 0.0
    for j in range(cd.grp_ptr[g], cd.grp_ptr[g + 1]):
        s += values[cd.grp_item[j]]
    return s


@njit
def _quantity(cd, code, g, pool_start, pool_end, bal, int_due_total):  # type: ignore[no-untyped-def]
    if code == Q_POOL_BALANCE:
        return pool_end
    if code == Q_POOL_BALANCE_START:
        return pool_start
    if code == Q_ORIGINAL_POOL_BALANCE:
        return cd.original_pool_balance
    if code == Q_NOTES_BALANCE:
        return bal.sum()
    if code == Q_BALANCE:
        return _group_sum(cd, bal, g)
    if code == Q_ORIGINAL_BALANCE:
        return _group_sum(cd, cd.tr_balance, g)
    if code == Q_INTEREST_DUE:
        return _group_sum(cd, int_due_total, g)
    return 0.0


@njit
def _amount(cd, m, t, pool_start, pool_end, bal, int_due_total):  # type: ignore[no-untyped-def]
    kind = cd.amt_kind[m]
    if kind == AMT_FIXED or kind == AMT_SCHEDULE:
        return cd.amt_value[m, t]
    q = _quantity(cd, cd.amt_quantity[m], cd.amt_group[m], pool_start, pool_end, bal, int_due_total)
    return max(cd.amt_floor[m], min(cd.amt_cap[m], cd.amt_share[m] * q))


@njit
def _account_target(cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total):  # type: ignore[no-untyped-def]
    if cd.acc_kind[k] == ACC_TRAP or last or accelerated or bal.sum() <= EPS:
        return 0.0
    target = _amount(cd, cd.acc_target[k], t, pool_start, pool_end, bal, int_due_total)
    return max(target, cd.acc_floor[k])


@njit
def _claim_due(cd, c, fee_due, int_due, prin_due, bal):  # type: ignore[no-untyped-def]
    ci = cd.claim_index[c]
    kind = cd.claim_kind[c]
    if kind == CLAIM_FEE:
        return fee_due[ci]
    if kind == CLAIM_INTEREST:
        return int_due[ci]
    return min(prin_due[ci], bal[ci])


@njit
def run_waterfall(
    cd,  # CompiledDeal
    coll: np.ndarray,  # (T, N_COLLECTION_COLUMNS) asset cash of this path
    support_stop: np.ndarray,  # (S,) period from which a support provider pays nothing (default)
    out,  # WaterfallTables, written in full
) -> None:
    """Run the priority of payments of ``cd`` over one path of collections.

    Parameters
    ----------
    cd : CompiledDeal
        The compiled deal.
    coll : ndarray, shape (T, N_COLLECTION_COLUMNS)
        Asset cash flows of the path (see :mod:`ipabs.risk.collections_numba_fns`).
    support_stop : ndarray, shape (S,)
        First period in which each support provider is in default (T when never).
    out : WaterfallTables
        Preallocated tables; every cell is overwritten.
    """
    n_t = cd.n_periods
    n_tr = cd.tr_balance.shape[0]
    n_fee = cd.fee_kind.shape[0]
    n_acc = cd.acc_kind.shape[0]
    n_sup = cd.sup_kind.shape[0]
    n_trg = cd.trg_kind.shape[0]

    bal = cd.tr_balance.copy()
    arrears = np.zeros(n_tr)
    int_due = np.zeros(n_tr)  # remaining this period
    int_due_total = np.zeros(n_tr)
    prin_due = np.zeros(n_tr)  # remaining this period
    fee_due = np.zeros(n_fee)
    fee_arrears = np.zeros(n_fee)
    acc_bal = cd.acc_initial.copy()
    sup_total = np.zeros(n_sup)
    sup_period = np.zeros(n_sup)
    lf_outstanding = np.zeros(n_sup)
    lf_int_arrears = np.zeros(n_sup)
    lf_start = np.zeros(n_sup)  # drawn at the start of the period (interest accrues on it)
    breaches = np.zeros(n_trg, dtype=np.int64)
    active = np.zeros(n_trg, dtype=np.bool_)
    carry = 0.0
    cum_default = 0.0
    called = False

    out.tranche[:] = 0.0
    out.fee[:] = 0.0
    out.account[:] = 0.0
    out.support[:] = 0.0
    out.trigger[:] = 0.0
    out.deal[:] = 0.0

    for t in range(n_t):
        last = t == n_t - 1
        yf = cd.year_frac[t]
        row = out.deal[t]

        # 1. collections ---------------------------------------------------------------
        if called:
            asset_cash = coll[t, C_RECOVERY] + coll[t, C_GUARANTEE]
            principal_coll = asset_cash
            pool_start = 0.0
            pool_end = 0.0
        else:
            asset_cash = (
                coll[t, C_INTEREST]
                + coll[t, C_SCHED_PRINCIPAL]
                + coll[t, C_PREPAYMENT]
                + coll[t, C_RECOVERY]
                + coll[t, C_GUARANTEE]
                + coll[t, C_ROYALTY]
            )
            principal_coll = (
                coll[t, C_SCHED_PRINCIPAL]
                + coll[t, C_PREPAYMENT]
                + coll[t, C_RECOVERY]
                + coll[t, C_GUARANTEE]
            )
            pool_start = coll[t, C_BALANCE_START]
            pool_end = coll[t, C_BALANCE_END]
            cum_default += coll[t, C_DEFAULT]
        call_proceeds = 0.0
        if (
            not called
            and cd.call_threshold >= 0.0
            and pool_end > EPS
            and pool_end <= cd.call_threshold * cd.original_pool_balance
            and bal.sum() > EPS
        ):
            call_proceeds = cd.call_price * pool_end
            principal_coll += call_proceeds
            pool_end = 0.0
            called = True
        avail = carry + asset_cash + call_proceeds
        row[D_CARRY_IN] = carry
        row[D_COLLECTIONS] = asset_cash
        row[D_CALL_PROCEEDS] = call_proceeds
        row[D_CUMULATIVE_DEFAULTS] = cum_default
        row[D_POOL_BALANCE] = pool_end
        row[D_CALLED] = 1.0 if called else 0.0
        paid_total = 0.0
        draws_total = 0.0
        withdraw_total = 0.0
        deposit_total = 0.0

        # 2. what is due ---------------------------------------------------------------
        outstanding = bal.sum() + arrears.sum()
        alive = outstanding > EPS or asset_cash > EPS
        for k in range(n_tr):
            out.tranche[t, k, TR_BALANCE_START] = bal[k]
            int_due_total[k] = bal[k] * cd.tr_rate[k, t] * yf + arrears[k]
            int_due[k] = int_due_total[k]
            out.tranche[t, k, TR_INTEREST_DUE] = int_due_total[k]
        senior_fees = 0.0
        for f in range(n_fee):
            due = 0.0
            if alive:
                if cd.fee_kind[f] == FEE_ANNUAL:
                    due = cd.fee_amount[f] * yf
                elif cd.fee_kind[f] == FEE_PERIOD:
                    due = cd.fee_amount[f]
                else:
                    base = _quantity(
                        cd, cd.fee_base[f], cd.fee_base_group[f], pool_start, pool_end, bal, int_due_total
                    )
                    due = cd.fee_amount[f] * base * yf
            fee_due[f] = due + fee_arrears[f]
            out.fee[t, f, FEE_DUE] = fee_due[f]
            if cd.fee_senior[f]:
                senior_fees += fee_due[f]
        for s in range(n_sup):
            sup_period[s] = 0.0
            lf_start[s] = lf_outstanding[s]

        # 3. triggers ------------------------------------------------------------------
        sequential = False
        trap_share = 0.0
        wf = cd.normal_waterfall
        for g in range(n_trg):
            kind = cd.trg_kind[g]
            thr = cd.trg_threshold[g, t]
            value = 0.0
            breached = False
            if kind == TRG_CUMULATIVE_DEFAULT:
                value = cum_default / cd.original_pool_balance if cd.original_pool_balance > 0 else 0.0
                breached = value > thr
            elif kind == TRG_DSCR:
                service = 0.0
                for j in range(cd.grp_ptr[cd.trg_group[g]], cd.grp_ptr[cd.trg_group[g] + 1]):
                    k = cd.grp_item[j]
                    service += int_due_total[k]
                    if t >= cd.tr_due_period[k] or last:
                        service += bal[k]
                    elif cd.tr_schedule[k, t] < bal[k]:
                        service += bal[k] - cd.tr_schedule[k, t]
                if service > EPS:
                    value = (asset_cash - senior_fees) / service
                    breached = value < thr
                else:
                    value = np.inf
            elif kind == TRG_RESERVE_BELOW_TARGET:
                k = cd.trg_account[g]
                target = _account_target(cd, k, t, False, False, pool_start, pool_end, bal, int_due_total)
                value = acc_bal[k] / target if target > EPS else np.inf
                breached = value < (thr if thr > 0.0 else 1.0) - RATIO_TOL
            elif kind == TRG_OVERCOLLATERALISATION:
                notes = _group_sum(cd, bal, cd.trg_group[g])
                value = pool_start / notes if notes > EPS else np.inf
                breached = value < thr
            elif kind == TRG_INTEREST_SHORTFALL:
                # unpaid interest of the tested tranches whose interest may not defer
                value = 0.0
                for j in range(cd.grp_ptr[cd.trg_group[g]], cd.grp_ptr[cd.trg_group[g] + 1]):
                    k = cd.grp_item[j]
                    if not cd.tr_defer[k]:
                        value += arrears[k]
                breached = value > EPS
            if breached:
                breaches[g] += 1
            else:
                breaches[g] = 0
            if breaches[g] >= cd.trg_consecutive[g]:
                active[g] = True
            elif cd.trg_curable[g] and not breached:
                active[g] = False
            out.trigger[t, g, TRG_VALUE] = value
            out.trigger[t, g, TRG_BREACHED] = 1.0 if breached else 0.0
            out.trigger[t, g, TRG_ACTIVE] = 1.0 if active[g] else 0.0
            if active[g]:
                if cd.trg_sequential[g]:
                    sequential = True
                trap_share = max(trap_share, cd.trg_trap[g])
                if cd.trg_waterfall[g] >= 0 and (wf == cd.normal_waterfall or cd.trg_waterfall[g] > wf):
                    wf = cd.trg_waterfall[g]
        accelerated = wf != cd.normal_waterfall
        row[D_WATERFALL] = wf
        row[D_SEQUENTIAL] = 1.0 if sequential else 0.0
        row[D_TRAP_SHARE] = trap_share

        for k in range(n_tr):
            if accelerated or last or t >= cd.tr_due_period[k]:
                prin_due[k] = bal[k]
            elif cd.tr_schedule[k, t] < bal[k]:
                prin_due[k] = bal[k] - cd.tr_schedule[k, t]
            else:
                prin_due[k] = 0.0
            out.tranche[t, k, TR_PRINCIPAL_DUE] = prin_due[k]

        # 4. account releases ----------------------------------------------------------
        for k in range(n_acc):
            out.account[t, k, ACC_START] = acc_bal[k]
            release = 0.0
            if cd.acc_kind[k] == ACC_TRAP:
                if trap_share <= 0.0 or accelerated or last:
                    release = acc_bal[k]
            else:
                target = _account_target(
                    cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total
                )
                if last or accelerated or bal.sum() <= EPS:
                    release = acc_bal[k]
                elif cd.acc_release[k] and acc_bal[k] > target:
                    release = acc_bal[k] - target
            if release > 0.0:
                acc_bal[k] -= release
                avail += release
                out.account[t, k, ACC_WITHDRAWAL] += release
                withdraw_total += release

        # 5. steps ---------------------------------------------------------------------
        for st in range(cd.wf_ptr[wf], cd.wf_ptr[wf + 1]):
            op = cd.st_op[st]
            a = cd.st_a[st]
            if op == OP_PAY_FEE:
                total = _group_sum(cd, fee_due, a)
                pay = min(avail, total)
                if pay > EPS:
                    for j in range(cd.grp_ptr[a], cd.grp_ptr[a + 1]):
                        f = cd.grp_item[j]
                        x = fee_due[f] * pay / total
                        fee_due[f] -= x
                        out.fee[t, f, FEE_PAID] += x
                    avail -= pay
                    paid_total += pay
            elif op == OP_PAY_INTEREST:
                total = _group_sum(cd, int_due, a)
                pay = min(avail, total)
                if pay > EPS:
                    for j in range(cd.grp_ptr[a], cd.grp_ptr[a + 1]):
                        k = cd.grp_item[j]
                        x = int_due[k] * pay / total
                        int_due[k] -= x
                        out.tranche[t, k, TR_INTEREST_PAID] += x
                    avail -= pay
                    paid_total += pay
            elif op == OP_PAY_PRINCIPAL:
                limit = cd.st_c[st]
                cap = avail
                # at legal final and after a switch everything is due: limits and targets lapse
                ends = last or accelerated
                if limit == LIMIT_PRINCIPAL_COLLECTIONS and not ends:
                    cap = min(cap, principal_coll)
                if limit == LIMIT_DUE:
                    cap = min(cap, _group_sum(cd, prin_due, a))
                group_bal = _group_sum(cd, bal, a)
                if cd.st_d[st] >= 0 and not ends:
                    target = _amount(cd, cd.st_d[st], t, pool_start, pool_end, bal, int_due_total)
                    cap = min(cap, max(group_bal - target, 0.0))
                cap = min(cap, group_bal)
                if cap > EPS:
                    pro_rata = cd.st_b[st] == 1 and not sequential
                    paid = 0.0
                    if pro_rata:
                        basis = _group_sum(cd, prin_due, a) if limit == LIMIT_DUE else group_bal
                        for j in range(cd.grp_ptr[a], cd.grp_ptr[a + 1]):
                            k = cd.grp_item[j]
                            w = prin_due[k] if limit == LIMIT_DUE else bal[k]
                            x = min(cap * w / basis, bal[k]) if basis > 0.0 else 0.0
                            bal[k] -= x
                            prin_due[k] = max(prin_due[k] - x, 0.0)
                            out.tranche[t, k, TR_PRINCIPAL_PAID] += x
                            paid += x
                    else:
                        left = cap
                        for j in range(cd.grp_ptr[a], cd.grp_ptr[a + 1]):
                            k = cd.grp_item[j]
                            room = prin_due[k] if limit == LIMIT_DUE else bal[k]
                            x = min(left, room)
                            bal[k] -= x
                            prin_due[k] = max(prin_due[k] - x, 0.0)
                            out.tranche[t, k, TR_PRINCIPAL_PAID] += x
                            left -= x
                            paid += x
                    avail -= paid
                    principal_coll = max(principal_coll - paid, 0.0)
                    paid_total += paid
            elif op == OP_FUND_ACCOUNT:
                target = _account_target(
                    cd, a, t, last, accelerated, pool_start, pool_end, bal, int_due_total
                )
                x = min(avail, max(target - acc_bal[a], 0.0))
                if x > EPS:
                    acc_bal[a] += x
                    avail -= x
                    out.account[t, a, ACC_DEPOSIT] += x
                    deposit_total += x
            elif op == OP_TRAP_CASH:
                # nothing is kept back once the deal ends or accelerates
                x = 0.0 if (last or accelerated) else trap_share * avail
                if x > EPS:
                    acc_bal[a] += x
                    avail -= x
                    out.account[t, a, ACC_DEPOSIT] += x
                    deposit_total += x
            elif op == OP_DRAW:
                # Draw only the deficit the cash in hand cannot meet, and pay it straight to
                # the covered claims in order: placed after the payments it backs up, this is
                # the unpaid part; placed before them, the later steps pay the rest from cash.
                src = cd.st_b[st]
                grp = cd.st_c[st]
                need_total = 0.0
                for j in range(cd.grp_ptr[grp], cd.grp_ptr[grp + 1]):
                    need_total += _claim_due(cd, cd.grp_item[j], fee_due, int_due, prin_due, bal)
                if a == 0:  # an account
                    room = acc_bal[src]
                elif t >= support_stop[src]:  # the provider has defaulted
                    room = 0.0
                elif cd.sup_kind[src] == SUP_DEFICIENCY:
                    room = min(
                        cd.sup_cap_period[src] - sup_period[src], cd.sup_cap_total[src] - sup_total[src]
                    )
                else:
                    room = cd.sup_cap_total[src] - lf_outstanding[src]
                x_total = min(max(need_total - avail, 0.0), max(room, 0.0))
                if x_total > EPS:
                    if a == 0:
                        acc_bal[src] -= x_total
                        out.account[t, src, ACC_WITHDRAWAL] += x_total
                        withdraw_total += x_total
                    else:
                        sup_period[src] += x_total
                        sup_total[src] += x_total
                        if cd.sup_kind[src] != SUP_DEFICIENCY:
                            lf_outstanding[src] += x_total
                        out.support[t, src, SUP_DRAW] += x_total
                        draws_total += x_total
                    left = x_total
                    for j in range(cd.grp_ptr[grp], cd.grp_ptr[grp + 1]):
                        c = cd.grp_item[j]
                        ci = cd.claim_index[c]
                        x = min(left, _claim_due(cd, c, fee_due, int_due, prin_due, bal))
                        if x <= 0.0:
                            continue
                        left -= x
                        ck = cd.claim_kind[c]
                        if ck == CLAIM_FEE:
                            fee_due[ci] -= x
                            out.fee[t, ci, FEE_PAID] += x
                        elif ck == CLAIM_INTEREST:
                            int_due[ci] -= x
                            out.tranche[t, ci, TR_INTEREST_PAID] += x
                            out.tranche[t, ci, TR_SUPPORT_RECEIVED] += x
                        else:
                            bal[ci] -= x
                            prin_due[ci] = max(prin_due[ci] - x, 0.0)
                            out.tranche[t, ci, TR_PRINCIPAL_PAID] += x
                            out.tranche[t, ci, TR_SUPPORT_RECEIVED] += x
                        paid_total += x
            elif op == OP_REPAY_LIQUIDITY:
                # interest runs on what was outstanding since the last date, not on today's draws
                interest = lf_start[a] * cd.sup_rate[a] * yf + lf_int_arrears[a]
                xi = min(avail, interest)
                lf_int_arrears[a] = interest - xi
                avail -= xi
                xp = min(avail, lf_outstanding[a])
                lf_outstanding[a] -= xp
                avail -= xp
                out.support[t, a, SUP_INTEREST_PAID] += xi
                out.support[t, a, SUP_REPAID] += xp
                paid_total += xi + xp
            elif op == OP_PAY_RESIDUAL:
                if avail > EPS:
                    x = min(avail, bal[a])
                    bal[a] -= x
                    prin_due[a] = max(prin_due[a] - x, 0.0)
                    out.tranche[t, a, TR_PRINCIPAL_PAID] += x
                    out.tranche[t, a, TR_RESIDUAL_PAID] += avail - x
                    paid_total += avail
                    avail = 0.0

        # 6. close the period ----------------------------------------------------------
        for k in range(n_tr):
            arrears[k] = int_due[k] if int_due[k] > EPS else 0.0
            if bal[k] < EPS:
                bal[k] = 0.0
            out.tranche[t, k, TR_BALANCE_END] = bal[k]
            out.tranche[t, k, TR_INTEREST_ARREARS] = arrears[k]
        for f in range(n_fee):
            fee_arrears[f] = fee_due[f] if fee_due[f] > EPS else 0.0
            out.fee[t, f, FEE_ARREARS] = fee_arrears[f]
        for k in range(n_acc):
            out.account[t, k, ACC_END] = acc_bal[k]
            out.account[t, k, ACC_TARGET] = _account_target(
                cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total
            )
        for s in range(n_sup):
            out.support[t, s, SUP_OUTSTANDING] = lf_outstanding[s]
            out.support[t, s, SUP_CUMULATIVE_DRAW] = sup_total[s]
        carry = avail
        row[D_SUPPORT_DRAWS] = draws_total
        row[D_ACCOUNT_WITHDRAWALS] = withdraw_total
        row[D_PAYMENTS] = paid_total
        row[D_ACCOUNT_DEPOSITS] = deposit_total
        row[D_CARRY_OUT] = carry
