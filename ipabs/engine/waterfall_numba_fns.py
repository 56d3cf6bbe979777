"""The waterfall kernel: one path of a deal's priority of payments, period by period, step by
step. The deterministic run and every Monte Carlo path call this same function.

Per payment date, in order:

1. collect the period's asset cash (and exercise the clean-up call when the pool is small, or
   the issuer call when its condition holds);
2. compute what is due: note interest (plus arrears), principal due, fees (plus arrears);
3. test the triggers and set the period's mode: sequential principal, trap share, waterfall;
   then settle the rate hedges (receipts are income; a defaulted counterparty or, when the
   hedge says so, a waterfall switch terminates a hedge at its mark-to-market);
4. release account balances above target (all of it at legal final or after acceleration);
5. run the steps of the active waterfall;
6. carry unpaid interest and fees as arrears and any unapplied cash to the next date, and
   settle investor puts falling on the date (they move no trust cash).

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
    AMT_FORMULA,
    AMT_SCHEDULE,
    C_ARREARS_INTEREST,
    C_ARREARS_PRINCIPAL,
    C_BALANCE_END,
    C_BALANCE_START,
    C_COLLATERAL_VALUE,
    C_DEFAULT,
    C_DELINQUENT_30,
    C_GUARANTEE,
    C_INSURANCE,
    C_INTEREST,
    C_MISSED_INTEREST,
    C_MISSED_PRINCIPAL,
    C_PREPAYMENT,
    C_REALISED_LOSS,
    C_RECOVERY,
    C_RISK_SHARING,
    C_ROYALTY,
    C_SCHED_PRINCIPAL,
    CLAIM_FEE,
    CLAIM_INTEREST,
    CLAIM_PRINCIPAL_AT_FINAL,
    CLAIM_PRINCIPAL_AT_MATURITY,
    D_ACCOUNT_DEPOSITS,
    D_ACCOUNT_WITHDRAWALS,
    D_ADVANCED_INTEREST,
    D_ADVANCED_PRINCIPAL,
    D_ADVANCES_OUTSTANDING,
    D_ADVANCES_REPAID,
    D_CALL_KIND,
    D_CALL_PROCEEDS,
    D_CALLED,
    D_CARRY_IN,
    D_CARRY_OUT,
    D_COLLECTIONS,
    D_CUMULATIVE_DEFAULTS,
    D_HEDGE_PAID,
    D_HEDGE_RECEIVED,
    D_INCOME_COLLECTIONS,
    D_PAYMENTS,
    D_POOL_BALANCE,
    D_PRINCIPAL_CARRIED,
    D_PRINCIPAL_COLLECTIONS,
    D_PRINCIPAL_DEFICIENCY,
    D_PRINCIPAL_USED,
    D_PURCHASE_PRICE,
    D_PURCHASED,
    D_PURCHASED_BALANCE,
    D_PURCHASED_COLLECTIONS,
    D_PURCHASED_DEFAULTS,
    D_REVOLVING,
    D_SEQUENTIAL,
    D_SUPPORT_DRAWS,
    D_TO_PRINCIPAL,
    D_TRAP_SHARE,
    D_UNINVESTED,
    D_WATERFALL,
    D_WRITE_DOWN,
    FEE_ABOVE_CAP,
    FEE_ABOVE_CAP_PAID,
    FEE_AMOUNT,
    FEE_ANNUAL,
    FEE_ARREARS,
    FEE_DUE,
    FEE_PAID,
    FEE_PERIOD,
    HG_COUNTERPARTY_LEG,
    HG_DEFAULTED,
    HG_DUE,
    HG_NOTIONAL,
    HG_PAID,
    HG_RECEIVED,
    HG_TERMINATED,
    HG_TERMINATION,
    HG_TERMINATION_PAID,
    HG_TERMINATION_UNPAID,
    HG_TRUST_LEG,
    HG_UNPAID,
    LIMIT_DUE,
    LIMIT_PRINCIPAL_COLLECTIONS,
    N_PERIOD_QUANTITIES,
    OP_BUY_ASSETS,
    OP_DRAW,
    OP_FUND_ACCOUNT,
    OP_PAY_FEE,
    OP_PAY_FEE_ABOVE_CAP,
    OP_PAY_HEDGE,
    OP_PAY_HEDGE_TERMINATION,
    OP_PAY_INTEREST,
    OP_PAY_PRINCIPAL,
    OP_PAY_RESIDUAL,
    OP_REIMBURSE,
    OP_REPAY_LIQUIDITY,
    OP_TO_PRINCIPAL,
    OP_TRAP_CASH,
    PDL_DEBIT_DEFAULTS,
    PDL_DEBIT_LOSSES,
    POT_COMBINED,
    POT_PRINCIPAL,
    PQ_ALL_DUE,
    PQ_COLLATERAL_VALUE,
    PQ_DELINQUENT_30,
    PQ_PERIOD,
    PQ_SENIOR_FEES,
    Q_ADVANCES_OUTSTANDING,
    Q_BALANCE,
    Q_COLLATERAL_VALUE,
    Q_DELINQUENT_30,
    Q_DSCR,
    Q_EXCESS_SPREAD,
    Q_INTEREST_COLLECTIONS,
    Q_INTEREST_DUE,
    Q_NEXT_FEES,
    Q_NEXT_INTEREST,
    Q_NOTES_BALANCE,
    Q_ORIGINAL_BALANCE,
    Q_ORIGINAL_POOL_BALANCE,
    Q_OVERCOLLATERALISATION,
    Q_POOL_BALANCE,
    Q_POOL_BALANCE_START,
    Q_TRIGGER,
    START_CARRY,
    START_CARRY_PRINCIPAL,
    START_CUMULATIVE_DEFAULTS,
    START_PDL,
    START_YEAR,
    SUP_CUMULATIVE_DRAW,
    SUP_DEFICIENCY,
    SUP_DRAW,
    SUP_INTEREST_PAID,
    SUP_NOTES_HELD,
    SUP_OUTSTANDING,
    SUP_PUT_BOUGHT,
    SUP_REIMBURSED,
    SUP_REPAID,
    SUP_UNREIMBURSED,
    TO_PRINCIPAL_ALL,
    TO_PRINCIPAL_DEFICIENCY,
    TR_BALANCE_END,
    TR_BALANCE_START,
    TR_INTEREST_ARREARS,
    TR_INTEREST_DUE,
    TR_INTEREST_PAID,
    TR_PRINCIPAL_DUE,
    TR_PRINCIPAL_PAID,
    TR_PUT_EXERCISED,
    TR_PUT_UNFUNDED,
    TR_RESIDUAL_PAID,
    TR_SUPPORT_RECEIVED,
    TR_WRITE_DOWN,
    TR_WRITTEN_DOWN,
    TRG_ACTIVE,
    TRG_BREACHED,
    TRG_COLLECTIONS_VS_PROJECTION,
    TRG_CUMULATIVE_DEFAULT,
    TRG_DELINQUENCY,
    TRG_DSCR,
    TRG_EXCESS_SPREAD,
    TRG_INTEREST_SHORTFALL,
    TRG_LOAN_TO_VALUE,
    TRG_OBLIGOR_DEFAULT,
    TRG_OVERCOLLATERALISATION,
    TRG_PRINCIPAL_DEFICIENCY,
    TRG_PUT_UNFUNDED,
    TRG_RESERVE_BELOW_TARGET,
    TRG_UNINVESTED_CASH,
    TRG_VALUE,
    WRITE_DOWN_AT_DEFAULT,
)
from ipabs.engine.revolving_numba_fns import (
    F_BALANCE_END,
    F_BALANCE_START,
    F_COLLATERAL_VALUE,
    F_DEFAULT,
    F_INTEREST,
    F_PREPAYMENT,
    F_REALISED_LOSS,
    F_RECOVERY,
    F_SCHED_PRINCIPAL,
    MODE_NONE,
    T_PURCHASED,
    buy,
    period_flows,
    reset,
)

# Everything here is a leaf kernel (no allocation, no reference counting), and the helpers are
# inlined: handing them the whole compiled deal costs nothing, where a real call passing its
# arrays by value cost more than the helper's own work.
EPS = 1e-6  # money below a millionth of a unit is rounding dust: never paid, never a shortfall
RATIO_TOL = 1e-12  # tolerance of ratio tests


@njit(leaf=True, inline="always")
def _group_sum(grp_ptr, grp_item, values, g):  # type: ignore[no-untyped-def]
    # unsigned indices: numba wraps a signed one around for negative values, which lengthens
    # every load of these short, frequent loops
    s = 0.0
    for j in range(np.uint64(grp_ptr[g]), np.uint64(grp_ptr[g + 1])):
        s += values[np.uint64(grp_item[j])]
    return s


@njit(leaf=True, inline="always")
def _pay_group(grp_ptr, grp_item, g, due, paid, pay, total):  # type: ignore[no-untyped-def]
    """Pay ``pay`` of the ``total`` due by the members of group ``g`` pro rata to ``due``,
    adding each payment to ``paid`` (a column view of an output table)."""
    if pay >= total:  # in full: no division (the usual case)
        for j in range(np.uint64(grp_ptr[g]), np.uint64(grp_ptr[g + 1])):
            m = np.uint64(grp_item[j])
            paid[m] += due[m]
            due[m] = 0.0
    else:
        share = pay / total
        for j in range(np.uint64(grp_ptr[g]), np.uint64(grp_ptr[g + 1])):
            m = np.uint64(grp_item[j])
            x = due[m] * share
            due[m] -= x
            paid[m] += x


# Not inlined (two call sites; arrays, not the compiled deal, so the call is cheap).
@njit(leaf=True)
def _debt_service(
    grp_ptr, grp_item, tr_due_period, tr_schedule, n_periods, g, t, all_due, bal, int_due_total
):  # type: ignore[no-untyped-def]
    """Interest and principal due of tranche group ``g`` (a DSCR's denominator): the whole
    balance once it is due (``all_due``, its expected maturity, legal final), else its
    scheduled amortisation."""
    service = 0.0
    last = t == n_periods - 1
    for j in range(grp_ptr[g], grp_ptr[g + 1]):
        k = grp_item[j]
        service += int_due_total[k]
        if all_due or t >= tr_due_period[k] or last:
            service += bal[k]
        elif tr_schedule[k, t] < bal[k]:
            service += bal[k] - tr_schedule[k, t]
    return service


@njit(leaf=True, inline="always")
def _quantity(cd, code, g, pool_start, pool_end, bal, int_due_total, pq):  # type: ignore[no-untyped-def]
    if code >= Q_INTEREST_COLLECTIONS and code <= Q_EXCESS_SPREAD:
        return pq[code - Q_INTEREST_COLLECTIONS]  # the period's collections, ledger and tests
    if code == Q_TRIGGER:  # its value this period (see 3. triggers)
        return pq[N_PERIOD_QUANTITIES + g]
    if code == Q_COLLATERAL_VALUE:  # ---- collateral value, read with the collections
        return pq[PQ_COLLATERAL_VALUE]
    if code >= Q_DELINQUENT_30 and code <= Q_ADVANCES_OUTSTANDING:  # ---- delinquency
        return pq[PQ_DELINQUENT_30 + code - Q_DELINQUENT_30]
    if code == Q_POOL_BALANCE:
        return pool_end
    if code == Q_POOL_BALANCE_START:
        return pool_start
    if code == Q_ORIGINAL_POOL_BALANCE:
        return cd.original_pool_balance
    if code == Q_NOTES_BALANCE:
        return bal.sum()
    if code == Q_BALANCE:
        return _group_sum(cd.grp_ptr, cd.grp_item, bal, g)
    if code == Q_ORIGINAL_BALANCE:
        return _group_sum(cd.grp_ptr, cd.grp_item, cd.tr_balance, g)
    if code == Q_INTEREST_DUE:
        return _group_sum(cd.grp_ptr, cd.grp_item, int_due_total, g)
    return 0.0


# Not inlined: once a period, and only for deals whose formulas read period quantities.
@njit(leaf=True)
def _snapshot_tests(cd, t, pool_start, bal, int_due_total, pq):  # type: ignore[no-untyped-def]
    """The DSCR and overcollateralisation formulas read, computed when the triggers are tested
    (on the balances and dues at the start of the period), whatever step reads them later."""
    base = N_PERIOD_QUANTITIES + cd.trg_kind.shape[0]
    for m in range(cd.amt_kind.shape[0]):
        code = cd.amt_quantity[m]
        if cd.amt_kind[m] != AMT_FORMULA:
            continue
        g = cd.amt_group[m]
        if code == Q_DSCR:
            service = _debt_service(
                cd.grp_ptr,
                cd.grp_item,
                cd.tr_due_period,
                cd.tr_schedule,
                cd.n_periods,
                g,
                t,
                pq[PQ_ALL_DUE] > 0.0,
                bal,
                int_due_total,
            )
            pq[base + m] = (pq[3] - pq[PQ_SENIOR_FEES]) / service if service > EPS else np.inf
        elif code == Q_OVERCOLLATERALISATION:
            notes = _group_sum(cd.grp_ptr, cd.grp_item, bal, g)
            pq[base + m] = pool_start / notes if notes > EPS else np.inf


# Not inlined: amounts are inlined at a dozen places, and this loop is rarely run.
@njit(leaf=True)
def _next_due(cd, code, g, t, end, pool_start, pool_end, bal, int_due_total, pq):  # type: ignore[no-untyped-def]
    """What falls due on the payment dates after ``t`` up to (excluding) period ``end``:
    interest of tranche group ``g`` on today's balances (``Q_NEXT_INTEREST``), or the senior
    fees (``Q_NEXT_FEES``: annual and per-period amounts as scheduled, rate fees on today's
    base, formula fees at today's value)."""
    total = 0.0
    for u in range(t + 1, end):
        yf = cd.year_frac[u]
        if code == Q_NEXT_INTEREST:
            for j in range(cd.grp_ptr[g], cd.grp_ptr[g + 1]):
                k = cd.grp_item[j]
                total += bal[k] * cd.tr_rate[k, u] * yf
            continue
        for f in range(cd.fee_kind.shape[0]):
            if not cd.fee_senior[f]:
                continue
            fk = cd.fee_kind[f]
            if fk == FEE_ANNUAL:
                total += cd.fee_amount[f] * yf
            elif fk == FEE_PERIOD:
                total += cd.fee_amount[f]
            elif fk == FEE_AMOUNT:
                m = cd.fee_base[f]
                if cd.amt_kind[m] == AMT_FIXED or cd.amt_kind[m] == AMT_SCHEDULE:
                    total += cd.amt_value[m, u]
                else:
                    q = _quantity(
                        cd, cd.amt_quantity[m], cd.amt_group[m], pool_start, pool_end, bal, int_due_total, pq
                    )
                    total += max(cd.amt_floor[m], min(cd.amt_cap[m], cd.amt_share[m] * q))
            else:
                base = _quantity(
                    cd, cd.fee_base[f], cd.fee_base_group[f], pool_start, pool_end, bal, int_due_total, pq
                )
                total += cd.fee_amount[f] * base * yf
    return total


@njit(leaf=True, inline="always")
def _amount(cd, m, t, pool_start, pool_end, bal, int_due_total, pq):  # type: ignore[no-untyped-def]
    kind = cd.amt_kind[m]
    if kind == AMT_FIXED or kind == AMT_SCHEDULE:
        return cd.amt_value[m, t]
    code = cd.amt_quantity[m]
    if code == Q_DSCR or code == Q_OVERCOLLATERALISATION:  # as tested (see _snapshot_tests)
        q = pq[N_PERIOD_QUANTITIES + cd.trg_kind.shape[0] + m]
    elif code == Q_NEXT_INTEREST or code == Q_NEXT_FEES:
        q = _next_due(
            cd, code, cd.amt_group[m], t, cd.amt_horizon[m, t], pool_start, pool_end, bal, int_due_total, pq
        )
    else:
        q = _quantity(cd, code, cd.amt_group[m], pool_start, pool_end, bal, int_due_total, pq)
    return max(cd.amt_floor[m], min(cd.amt_cap[m], cd.amt_share[m] * q))


@njit(leaf=True, inline="always")
def _account_target(cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total, pq):  # type: ignore[no-untyped-def]
    if accelerated and cd.acc_keep[k]:  # ---- covenants: kept funded after a switch
        accelerated = False
    if cd.acc_kind[k] == ACC_TRAP or last or accelerated or bal.sum() <= EPS:
        return 0.0
    target = _amount(cd, cd.acc_target[k], t, pool_start, pool_end, bal, int_due_total, pq)
    return max(target, cd.acc_floor[k])


@njit(leaf=True, inline="always")
def _claim_due(claim_index, claim_kind, c, fee_due, int_due, prin_due, bal, t, last, due_period):  # type: ignore[no-untyped-def]
    ci = np.uint64(claim_index[c])  # unsigned: no wraparound (see _group_sum)
    kind = claim_kind[c]
    if kind == CLAIM_FEE:
        return fee_due[ci]
    if kind == CLAIM_INTEREST:
        return int_due[ci]
    # a guarantee of principal at legal final (or from expected maturity) owes nothing before
    if kind == CLAIM_PRINCIPAL_AT_FINAL and not last:
        return 0.0
    if kind == CLAIM_PRINCIPAL_AT_MATURITY and not last and t < due_period[ci]:
        return 0.0
    return min(prin_due[ci], bal[ci])


# ---- note options -----------------------------------------------------------------------


@njit(leaf=True, inline="always")
def _settle_puts(cd, t, bal, support_stop, out_tranche, out_support, full):  # type: ignore[no-untyped-def]
    """Investor puts on payment date ``t``, after its payments: holders of ``share`` of each
    tranche whose put date it is sell their notes at par to the supporter, which buys what its
    limit (less what it bought before) allows while it has not defaulted; the rest is unfunded.
    The notes stay outstanding: the trust's cash does not change. With ``full``, the support
    table records the notes bought and the notes held (bought notes amortise with the tranche).
    Reads earlier puts back from the tranche table, so it keeps no state of its own."""
    n_tr = bal.shape[0]
    for k in range(n_tr):
        if cd.tr_put_period[k] != t:
            continue
        s = cd.tr_put_supporter[k]
        amount = cd.tr_put_share[k] * bal[k]
        room = 0.0
        if t < support_stop[s]:
            used = 0.0
            for j in range(n_tr):
                tj = cd.tr_put_period[j]
                if cd.tr_put_supporter[j] == s and tj >= 0 and (tj < t or (tj == t and j < k)):
                    used += out_tranche[tj, j, TR_PUT_EXERCISED] - out_tranche[tj, j, TR_PUT_UNFUNDED]
            room = max(cd.sup_cap_total[s] - used, 0.0)
        funded = min(amount, room)
        out_tranche[t, k, TR_PUT_EXERCISED] = amount
        out_tranche[t, k, TR_PUT_UNFUNDED] = amount - funded if amount - funded > EPS else 0.0
        if full:
            out_support[t, s, SUP_PUT_BOUGHT] += funded
    if full:
        for k in range(n_tr):
            tk = cd.tr_put_period[k]
            if tk < 0 or tk > t:
                continue
            at_put = out_tranche[tk, k, TR_BALANCE_END]
            bought = out_tranche[tk, k, TR_PUT_EXERCISED] - out_tranche[tk, k, TR_PUT_UNFUNDED]
            if at_put > EPS:
                out_support[t, cd.tr_put_supporter[k], SUP_NOTES_HELD] += bought * bal[k] / at_put


# ---- hedges -------------------------------------------------------------------------------


# Not inlined: a termination is rare, and its loop would bloat every call site.
@njit(leaf=True)
def _hedge_value(cd, h, t, notional):  # type: ignore[no-untyped-def]
    """Mark-to-market to the trust of hedge ``h`` on payment date ``t``: the net payments of
    the periods it settles from ``t`` on (period ``t``'s own included, undiscounted), each
    discounted on the hedge's index curve to that date. A notional that follows a formula is
    held at ``notional`` (this period's); a fixed or scheduled one follows its values."""
    m = cd.hg_notional[h]
    formula = cd.amt_kind[m] != AMT_FIXED and cd.amt_kind[m] != AMT_SCHEDULE
    base = cd.hg_discount[h, t]
    value = 0.0
    for u in range(t, cd.n_periods):
        if cd.hg_live[h, u] == 1:
            n_u = notional if formula else cd.amt_value[m, u]
            net = n_u * (cd.hg_recv_rate[h, u] - cd.hg_pay_rate[h, u]) * cd.hg_year_frac[h, u]
            value += net * cd.hg_discount[h, u] / base
    return value


# ---- delinquency


@njit(leaf=True)
def _servicer_advances(adv_on, coll, t, advancing, called, state):  # type: ignore[no-untyped-def]
    """Servicer advances of period ``t``: returns the interest and principal advanced now (on
    what delinquent loans missed, while the servicer is ``advancing``) and moves the advances
    on arrears that left the delinquent buckets (cured or defaulted) to what is owed to the
    servicer. ``state``: advances outstanding on interest arrears, on principal arrears, and
    owed (due, unpaid). Each arrears ledger clears its advances in the share it cleared; after
    a call the pool is sold and every advance is due."""
    for j in range(2):
        col = C_ARREARS_INTEREST if j == 0 else C_ARREARS_PRINCIPAL
        missed = C_MISSED_INTEREST if j == 0 else C_MISSED_PRINCIPAL
        before = coll[t - 1, col] if t > 0 else 0.0
        share = 1.0
        if before > EPS and not called:
            share = min(max((before + coll[t, missed] - coll[t, col]) / before, 0.0), 1.0)
        due = state[j] * share
        state[j] -= due
        state[2] += due
    adv_i = 0.0
    adv_p = 0.0
    if advancing and not called:
        if adv_on & 1:
            adv_i = coll[t, C_MISSED_INTEREST]
            state[0] += adv_i
        if adv_on & 2:
            adv_p = coll[t, C_MISSED_PRINCIPAL]
            state[1] += adv_p
    return adv_i, adv_p


@njit
def run_waterfall(
    cd,  # CompiledDeal
    coll: np.ndarray,  # (T, N_COLLECTION_COLUMNS) asset cash of this path
    support_stop: np.ndarray,  # (S + K,) period from which a support provider pays nothing (default)
    out,  # WaterfallTables, written in full
    rv,  # RevolvingPath
) -> None:
    """Run the priority of payments of ``cd`` over one path of collections.

    Parameters
    ----------
    cd : CompiledDeal
        The compiled deal.
    coll : ndarray, shape (T, N_COLLECTION_COLUMNS)
        Asset cash flows of the path (columns: :data:`ipabs.engine.layout.COLLECTION_COLUMNS`).
    support_stop : ndarray, shape (S + K,)
        First period in which each support provider, then each obligor an `obligor_default`
        trigger watches, is in default (T when never).
    out : WaterfallTables
        Preallocated tables; every cell is overwritten.
    rv : RevolvingPath
        The revolving period's assumptions and scratch
        (:mod:`ipabs.engine.revolving_numba_fns`).
    """
    work, flags = allocate_work(cd)
    waterfall_path(cd, coll, support_stop, out, work, flags, True, rv)


@njit
def allocate_work(cd):  # type: ignore[no-untyped-def]
    """Scratch state of :func:`waterfall_path` (reused across the paths of a chunk)."""
    n_tr = cd.tr_balance.shape[0]
    n_fee = cd.fee_kind.shape[0]
    n_acc = cd.acc_kind.shape[0]
    n_sup = cd.sup_kind.shape[0]
    n_trg = cd.trg_kind.shape[0]
    # ---- covenants: each trigger's value, then its tests' numerators and denominators by period
    n_amt = cd.amt_kind.shape[0]
    n_hg = cd.hg_notional.shape[0]  # ---- hedges: what the trust owes, and the terminated flag
    size = (
        6 * n_tr
        + 5 * n_fee
        + n_acc
        + 5 * n_sup
        + N_PERIOD_QUANTITIES
        + n_trg * (1 + 2 * cd.n_periods)
        + n_amt
        + 3 * n_hg
        + 3  # ---- delinquency: servicer advances
    )
    return np.empty(size), np.empty(4 * n_trg, dtype=np.int64)


@njit(leaf=True)
def waterfall_path(cd, coll, support_stop, out, work, flags, full, rv):  # type: ignore[no-untyped-def]
    """:func:`run_waterfall` on caller-owned scratch (``work``, ``flags`` from
    :func:`allocate_work`): allocates nothing, so a Monte Carlo chunk runs it once per path
    (compiled into its loop, see ``waterfall_path_inline``).

    With ``full`` False only the tranche table is valid afterwards (a Monte Carlo path's
    outcomes need nothing else): the other tables are not cleared and their rows are not
    written (what they hold afterwards means nothing), and the periods after the last asset
    cash are skipped once nothing is owed or held.
    """
    # short local names for the arrays the periods use
    cd_acc_initial = cd.acc_initial
    cd_acc_kind = cd.acc_kind
    cd_acc_release = cd.acc_release
    cd_call_price = cd.call_price
    cd_call_threshold = cd.call_threshold
    cd_claim_index = cd.claim_index
    cd_claim_kind = cd.claim_kind
    cd_fee_amount = cd.fee_amount
    cd_fee_base = cd.fee_base
    cd_fee_base_group = cd.fee_base_group
    cd_fee_kind = cd.fee_kind
    cd_fee_senior = cd.fee_senior
    cd_grp_item = cd.grp_item
    cd_grp_ptr = cd.grp_ptr
    cd_n_periods = cd.n_periods
    cd_normal_waterfall = cd.normal_waterfall
    cd_original_pool_balance = cd.original_pool_balance
    cd_st_a = cd.st_a
    cd_st_b = cd.st_b
    cd_st_c = cd.st_c
    cd_st_d = cd.st_d
    cd_st_op = cd.st_op
    cd_sup_cap_period = cd.sup_cap_period
    cd_sup_cap_total = cd.sup_cap_total
    cd_sup_kind = cd.sup_kind
    cd_sup_rate = cd.sup_rate
    cd_tr_balance = cd.tr_balance
    cd_tr_defer = cd.tr_defer
    cd_tr_due_period = cd.tr_due_period
    cd_tr_rate = cd.tr_rate
    cd_tr_schedule = cd.tr_schedule
    cd_trg_account = cd.trg_account
    cd_trg_consecutive = cd.trg_consecutive
    cd_trg_curable = cd.trg_curable
    cd_trg_group = cd.trg_group
    cd_trg_kind = cd.trg_kind
    cd_trg_sequential = cd.trg_sequential
    cd_trg_threshold = cd.trg_threshold
    cd_trg_trap = cd.trg_trap
    cd_trg_waterfall = cd.trg_waterfall
    cd_wf_ptr = cd.wf_ptr
    cd_year_frac = cd.year_frac
    cd_st_pot = cd.st_pot
    cd_fee_cap_year = cd.fee_cap_year
    fee_caps = False  # some fee has an annual cap
    for f in range(cd_fee_cap_year.shape[0]):
        if cd_fee_cap_year[f] < np.inf:
            fee_caps = True
    cd_year_id = cd.year_id
    cd_acc_to_principal = cd.acc_to_principal
    rec_share = cd.rec_principal_share
    pdl_debits = cd.pdl_debits
    write_down = cd.write_down
    wd_group = cd.write_down_group
    revolves = rv.mode != MODE_NONE and cd.rv_last >= 0
    cd_trg_end_revolving = cd.trg_end_revolving
    cd_trg_obligor = cd.trg_obligor
    # ---- note options
    cd_icall_factor = cd.icall_factor
    cd_icall_period = cd.icall_period
    cd_icall_price = cd.icall_price
    cd_icall_rate = cd.icall_rate
    cd_icall_refinance = cd.icall_refinance
    cd_put_any = cd.put_any
    cd_tr_put_period = cd.tr_put_period
    # ----
    out_account = out.account
    out_deal = out.deal
    out_fee = out.fee
    out_support = out.support
    out_tranche = out.tranche
    out_trigger = out.trigger
    cd_sup_reimbursable = cd.sup_reimbursable

    n_t = cd_n_periods
    n_tr = cd_tr_balance.shape[0]
    n_fee = cd_fee_kind.shape[0]
    n_acc = cd_acc_kind.shape[0]
    n_sup = cd_sup_kind.shape[0]
    n_trg = cd_trg_kind.shape[0]

    # state carried from period to period, as views of the scratch arrays
    bal = work[0:n_tr]
    arrears = work[n_tr : 2 * n_tr]
    int_due = work[2 * n_tr : 3 * n_tr]  # remaining this period
    int_due_total = work[3 * n_tr : 4 * n_tr]
    prin_due = work[4 * n_tr : 5 * n_tr]  # remaining this period
    o = 5 * n_tr
    fee_due = work[o : o + n_fee]
    fee_arrears = work[o + n_fee : o + 2 * n_fee]
    o += 2 * n_fee
    acc_bal = work[o : o + n_acc]
    o += n_acc
    sup_total = work[o : o + n_sup]
    sup_period = work[o + n_sup : o + 2 * n_sup]
    lf_outstanding = work[o + 2 * n_sup : o + 3 * n_sup]
    lf_int_arrears = work[o + 3 * n_sup : o + 4 * n_sup]
    lf_start = work[o + 4 * n_sup : o + 5 * n_sup]  # drawn at the start of the period
    o += 5 * n_sup
    written_down = work[o : o + n_tr]
    o += n_tr
    fee_above_cap = work[o : o + n_fee]  # accrued beyond the annual cap, owed junior
    fee_year_paid = work[o + n_fee : o + 2 * n_fee]  # paid in the senior position this deal year
    fee_due_start = work[o + 2 * n_fee : o + 3 * n_fee]
    o += 3 * n_fee
    # the period's quantities (Q_INTEREST_COLLECTIONS onwards): interest, income, principal,
    # all and royalty collections, defaults, then the principal deficiency ledger
    # then each trigger's value this period, then the test quantities formulas read
    n_amt = cd.amt_kind.shape[0]
    pq = work[o : o + N_PERIOD_QUANTITIES + n_trg + n_amt]
    o += N_PERIOD_QUANTITIES + n_trg + n_amt
    # ---- covenants: a trailing test's numerator and denominator in each period
    # (flat, trigger g's period t at g * n_t + t: a reshape is a library call on every path)
    test_num = work[o : o + n_trg * n_t]
    test_den = work[o + n_trg * n_t : o + 2 * n_trg * n_t]
    o += 2 * n_trg * n_t
    # ---- hedges: net payments and termination amounts the trust owes, and 1 once terminated
    n_hg = cd.hg_notional.shape[0]
    hg_owed = work[o : o + n_hg]
    hg_term = work[o + n_hg : o + 2 * n_hg]
    hg_done = work[o + 2 * n_hg : o + 3 * n_hg]
    o += 3 * n_hg
    adv_state = work[o : o + 3]  # ---- delinquency: see _servicer_advances
    out_hedge = out.hedge
    # each n_trg long, then their copies at the start of the period (see 3. triggers)
    breaches = flags[0 : 2 * n_trg]
    active = flags[2 * n_trg : 4 * n_trg]  # 1 while the trigger is in effect
    work[:] = 0.0
    flags[:] = 0
    for k in range(n_tr):
        bal[k] = cd_tr_balance[k]
    for k in range(n_acc):
        acc_bal[k] = cd_acc_initial[k]
    carry = 0.0
    carry_p = 0.0  # principal ledger's share of carry
    pdl = 0.0  # principal deficiency ledger
    year = -1
    cum_default = 0.0
    called = False
    revolving_ended = False
    uninvested = 0.0  # cash a buy_assets step kept on the previous date
    if revolves:
        reset(rv)
    issuer_called = False  # ---- note options: the issuer call makes every balance due
    # ---- surveillance: a run from a report date starts from the deal's state after the
    # period before (ipabs.analytics.reproject); its earlier rows stay zero
    t_start = cd.start_period
    if t_start > 0:
        for i in range(work.shape[0]):
            work[i] = cd.start_work[i]
        for i in range(flags.shape[0]):
            flags[i] = cd.start_flags[i]
        carry = cd.start_scalars[START_CARRY]
        carry_p = cd.start_scalars[START_CARRY_PRINCIPAL]
        pdl = cd.start_scalars[START_PDL]
        cum_default = cd.start_scalars[START_CUMULATIVE_DEFAULTS]
        year = np.int64(cd.start_scalars[START_YEAR])

    out_tranche[:] = 0.0
    if full:
        out_fee[:] = 0.0
        out_account[:] = 0.0
        out_support[:] = 0.0
        out_trigger[:] = 0.0
        out_deal[:] = 0.0
        out_hedge[:] = 0.0

    # After the last period with any asset cash, a period in which nothing is owed or held
    # changes nothing: a Monte Carlo path stops there (its tranche rows stay zero).
    t_end = n_t
    if not full and not revolves:  # purchased assets pay after the pool's last cash
        t_end = 0
        for t in range(n_t - 1, -1, -1):
            for c in range(coll.shape[1]):
                if coll[t, c] != 0.0 and c != C_COLLATERAL_VALUE:  # a value, not cash
                    t_end = t + 1
                    break
            if t_end > 0:
                break

    for t in range(t_start, n_t):
        if t >= t_end and carry <= 0.0:
            held = bal.sum() + arrears.sum() + fee_arrears.sum() + acc_bal.sum()
            held += lf_outstanding.sum() + lf_int_arrears.sum() + adv_state[2]
            if held <= 0.0:
                break
        last = t == n_t - 1
        yf = cd_year_frac[t]
        row = out_deal[t]

        # 1. collections ---------------------------------------------------------------
        # recoveries split between the ledgers by the deal's rule (all principal by default)
        rec_principal = coll[t, C_RECOVERY] * rec_share
        rec_income = coll[t, C_RECOVERY] - rec_principal
        # payments by guarantors, risk-sharing pools and insurers make up principal losses
        covered = coll[t, C_GUARANTEE] + coll[t, C_RISK_SHARING] + coll[t, C_INSURANCE]
        defaults = 0.0
        if called:  # the pool is sold: only recoveries and guarantees of earlier defaults
            interest_coll = 0.0
            royalty_coll = 0.0
            income_coll = rec_income
            principal_coll = rec_principal + covered
            pool_start = 0.0
            pool_end = 0.0
        else:
            interest_coll = coll[t, C_INTEREST]
            royalty_coll = coll[t, C_ROYALTY]
            income_coll = interest_coll + royalty_coll + rec_income
            principal_coll = coll[t, C_SCHED_PRINCIPAL] + coll[t, C_PREPAYMENT] + rec_principal + covered
            pool_start = coll[t, C_BALANCE_START]
            pool_end = coll[t, C_BALANCE_END]
            defaults = coll[t, C_DEFAULT]
        # after a call the pool's assets are sold: their later losses are the buyer's
        realised_loss = 0.0 if called else coll[t, C_REALISED_LOSS]
        purchased_cash = 0.0
        purchased_value = 0.0
        if revolves:  # assets bought on earlier dates (after a call: their pending recoveries)
            flow = rv.flow
            if called:
                flow[:] = 0.0
                flow[F_RECOVERY] = rv.pending[t, 0]
                flow[F_REALISED_LOSS] = rv.pending[t, 1]
            else:
                period_flows(cd, rv, t)
            p_rec = flow[F_RECOVERY] * rec_share
            interest_coll += flow[F_INTEREST]
            income_coll += flow[F_INTEREST] + (flow[F_RECOVERY] - p_rec)
            principal_coll += flow[F_SCHED_PRINCIPAL] + flow[F_PREPAYMENT] + p_rec
            purchased_cash = flow[F_INTEREST] + flow[F_SCHED_PRINCIPAL] + flow[F_PREPAYMENT]
            purchased_cash += flow[F_RECOVERY]
            defaults += flow[F_DEFAULT]
            realised_loss += flow[F_REALISED_LOSS]
            if not called:
                pool_start += flow[F_BALANCE_START]
                pool_end += flow[F_BALANCE_END]
                purchased_value = flow[F_COLLATERAL_VALUE]
        cum_default += defaults
        asset_cash = income_coll + principal_coll
        if cd.period_quantities:  # amounts that read this period's collections
            pq[0] = interest_coll
            pq[1] = income_coll
            pq[2] = principal_coll
            pq[3] = asset_cash
            pq[4] = royalty_coll
            pq[5] = defaults
            # ---- collateral value: a called pool is sold, its pledges released
            pq[PQ_COLLATERAL_VALUE] = 0.0 if called else coll[t, C_COLLATERAL_VALUE] + purchased_value
        call_proceeds = 0.0
        if (
            not called
            and cd_call_threshold >= 0.0
            and pool_end > EPS
            and pool_end <= cd_call_threshold * cd_original_pool_balance
            and bal.sum() > EPS
        ):
            call_proceeds = cd_call_price * pool_end
            principal_coll += call_proceeds
            pool_end = 0.0
            called = True
        # ---- note options: issuer call (icall_period is T when the deal has none)
        if t >= cd_icall_period and not called and pool_end > EPS and bal.sum() > EPS:
            exercise = pool_end < cd_icall_factor * cd_original_pool_balance
            if exercise and cd_icall_refinance == 1:
                # refinancing is cheaper than the notes' average coupon of the next period
                tn = t + 1 if t + 1 < n_t else t
                coupons = 0.0
                for k in range(n_tr):
                    coupons += bal[k] * cd_tr_rate[k, tn]
                exercise = cd_icall_rate[t] * bal.sum() < coupons
            if exercise:
                call_proceeds = cd_icall_price * pool_end
                principal_coll += call_proceeds
                pool_end = 0.0
                called = True
                issuer_called = True
        if full and called and (t == 0 or out_deal[t - 1, D_CALLED] == 0.0):  # the call date
            row[D_CALL_KIND] = 2.0 if issuer_called else 1.0
        # ----
        # the principal deficiency ledger records losses when the deal says so
        if pdl_debits & PDL_DEBIT_DEFAULTS:
            pdl += defaults
        if pdl_debits & PDL_DEBIT_LOSSES:
            pdl += realised_loss
        pq[6] = pdl
        avail_i = carry - carry_p + income_coll  # the two ledgers' cash (see 5. steps)
        avail_p = carry_p + principal_coll  # call proceeds included
        if full:  # a Monte Carlo path keeps only the tranche table: skip the others' rows
            row[D_CARRY_IN] = carry
            row[D_COLLECTIONS] = asset_cash
            row[D_CALL_PROCEEDS] = call_proceeds
            row[D_CUMULATIVE_DEFAULTS] = cum_default
            row[D_CALLED] = 1.0 if called else 0.0
            row[D_INCOME_COLLECTIONS] = income_coll
            row[D_PRINCIPAL_COLLECTIONS] = principal_coll
        # ---- delinquency: the buckets formulas read, and the servicer's advances, which it is
        # repaid out of income then principal cash before the priority of payments
        behind = 0.0  # balances at least 90, 60, 30 days behind
        for j in range(2, -1, -1):
            behind += 0.0 if called else coll[t, C_DELINQUENT_30 + j]
            pq[PQ_DELINQUENT_30 + j] = behind
        if cd.adv_on > 0:
            adv_i, adv_p = _servicer_advances(
                cd.adv_on, coll, t, t < support_stop[cd.adv_stop], called, adv_state
            )
            avail_i += adv_i
            avail_p += adv_p
            repay_i = min(adv_state[2], max(avail_i, 0.0))
            repay_p = min(adv_state[2] - repay_i, max(avail_p, 0.0))
            avail_i -= repay_i
            avail_p -= repay_p
            adv_state[2] -= repay_i + repay_p
            if full:
                row[D_ADVANCED_INTEREST] = adv_i
                row[D_ADVANCED_PRINCIPAL] = adv_p
                row[D_ADVANCES_REPAID] = repay_i + repay_p
                row[D_ADVANCES_OUTSTANDING] = adv_state[0] + adv_state[1] + adv_state[2]
        pq[PQ_DELINQUENT_30 + 3] = adv_state[0] + adv_state[1] + adv_state[2]
        paid_total = 0.0
        purchase_paid = 0.0
        bought = 0.0
        kept = 0.0  # cash a buy_assets step keeps for the next date
        to_principal_total = 0.0
        principal_used = 0.0
        draws_total = 0.0
        withdraw_total = 0.0
        deposit_total = 0.0

        # 2. what is due ---------------------------------------------------------------
        outstanding = bal.sum() + arrears.sum()
        alive = outstanding > EPS or asset_cash > EPS
        # Loss allocation by write-down: losses of the period (defaults at the start of the
        # period, as the pool's interest stops on them; or losses realised on liquidation)
        # reduce the balances in the deal's order before interest accrues on them.
        if write_down != 0:
            for k in range(n_tr):
                out_tranche[t, k, TR_BALANCE_START] = bal[k]
            loss = defaults if write_down == WRITE_DOWN_AT_DEFAULT else realised_loss
            wd_total = 0.0
            for j in range(cd_grp_ptr[wd_group], cd_grp_ptr[wd_group + 1]):
                k = cd_grp_item[j]
                x = min(loss - wd_total, bal[k])
                if x > 0.0:
                    bal[k] -= x
                    written_down[k] += x
                    out_tranche[t, k, TR_WRITE_DOWN] = x
                    wd_total += x
            if full:
                row[D_WRITE_DOWN] = wd_total
            for k in range(n_tr):
                out_tranche[t, k, TR_WRITTEN_DOWN] = written_down[k]
        for k in range(n_tr):
            if write_down == 0:
                out_tranche[t, k, TR_BALANCE_START] = bal[k]
            int_due_total[k] = bal[k] * cd_tr_rate[k, t] * yf + arrears[k]
            int_due[k] = int_due_total[k]
            out_tranche[t, k, TR_INTEREST_DUE] = int_due_total[k]
        senior_fees = 0.0
        if fee_caps and cd_year_id[t] != year:  # a new deal year: annual fee caps start again
            year = cd_year_id[t]
            for f in range(n_fee):
                fee_year_paid[f] = 0.0
        for f in range(n_fee):
            due = 0.0
            if alive:
                if cd_fee_kind[f] == FEE_ANNUAL:
                    due = cd_fee_amount[f] * yf
                elif cd_fee_kind[f] == FEE_PERIOD:
                    due = cd_fee_amount[f]
                elif cd_fee_kind[f] == FEE_AMOUNT:  # fee_base holds the amount's index
                    due = _amount(cd, cd_fee_base[f], t, pool_start, pool_end, bal, int_due_total, pq)
                else:
                    base = _quantity(
                        cd, cd_fee_base[f], cd_fee_base_group[f], pool_start, pool_end, bal, int_due_total, pq
                    )
                    due = cd_fee_amount[f] * base * yf
            fee_due[f] = due + fee_arrears[f]
            if fee_caps:  # above its annual cap a fee is owed junior (pay_fee_above_cap steps)
                room = max(cd_fee_cap_year[f] - fee_year_paid[f], 0.0)
                if fee_due[f] > room:
                    fee_above_cap[f] += fee_due[f] - room
                    fee_due[f] = room
                fee_due_start[f] = fee_due[f]
            if full:
                out_fee[t, f, FEE_DUE] = fee_due[f]
            if cd_fee_senior[f]:
                senior_fees += fee_due[f]
        for s in range(n_sup):
            sup_period[s] = 0.0
            lf_start[s] = lf_outstanding[s]

        # 3. triggers ------------------------------------------------------------------
        # A switched waterfall makes every tranche's whole balance due, and the DSCR's debt
        # service is what is due. When this period's triggers switch the waterfall, they are
        # tested again from their state at the start of the period with the whole balance due
        # (a larger debt service only lowers a DSCR, so the switch stands): the DSCR then
        # always divides by the interest and principal due of the tranche table.
        for g in range(n_trg):
            breaches[n_trg + g] = breaches[g]
            active[n_trg + g] = active[g]
        # ---- covenants: the period's test quantities (formulas read them too)
        owned = cd_original_pool_balance + (rv.total[T_PURCHASED] if revolves else 0.0)
        pq[7] = cum_default / owned if owned > 0 else 0.0
        if cd.spread_read:  # two dependent divisions a period: only when something reads them
            accrued = income_coll
            for k in range(n_tr):
                accrued -= int_due_total[k] - arrears[k]
            for f in range(n_fee):
                if cd_fee_senior[f]:
                    accrued -= max(fee_due[f] - fee_arrears[f], 0.0)
            spread_base = pool_start if pool_start > EPS else bal.sum()
            pq[8] = accrued / spread_base / yf if spread_base > EPS and yf > 0.0 else 0.0
        pq[PQ_SENIOR_FEES] = senior_fees
        pq[PQ_PERIOD] = t
        all_due = False
        for attempt in range(2):
            if attempt == 1:
                all_due = True
                for g in range(n_trg):
                    breaches[g] = breaches[n_trg + g]
                    active[g] = active[n_trg + g]
            sequential = False
            trap_share = 0.0
            wf = cd_normal_waterfall
            pq[PQ_ALL_DUE] = 1.0 if all_due or issuer_called else 0.0
            if cd.period_quantities:
                _snapshot_tests(cd, t, pool_start, bal, int_due_total, pq)
            for g in range(n_trg):
                kind = cd_trg_kind[g]
                thr = cd_trg_threshold[g, t]
                value = 0.0
                breached = False
                if kind == TRG_CUMULATIVE_DEFAULT:
                    # of everything the trust has owned: the pool at closing and all purchases
                    value = pq[7]
                    breached = value > thr
                elif (
                    kind == TRG_DSCR
                    or kind == TRG_COLLECTIONS_VS_PROJECTION
                    or kind == TRG_EXCESS_SPREAD
                    or kind == TRG_DELINQUENCY
                ):
                    # ---- covenants: ratio tests, over a trailing window of periods
                    if kind == TRG_DSCR:
                        test_num[g * n_t + t] = asset_cash - senior_fees
                        test_den[g * n_t + t] = _debt_service(
                            cd_grp_ptr,
                            cd_grp_item,
                            cd_tr_due_period,
                            cd_tr_schedule,
                            n_t,
                            cd_trg_group[g],
                            t,
                            all_due or issuer_called,
                            bal,
                            int_due_total,
                        )
                    elif kind == TRG_COLLECTIONS_VS_PROJECTION:
                        test_num[g * n_t + t] = pq[cd.trg_of[g]]
                        test_den[g * n_t + t] = cd.trg_projection[g, t]
                    elif kind == TRG_EXCESS_SPREAD:  # its average while notes are outstanding
                        live = pool_start > EPS or bal.sum() > EPS
                        test_num[g * n_t + t] = pq[8] if live else 0.0
                        test_den[g * n_t + t] = 1.0 if live else 0.0
                    else:  # ---- delinquency: the average ratio while the pool has a balance
                        behind = pq[PQ_DELINQUENT_30 + cd.trg_days[g]]
                        live = pool_end > EPS
                        test_num[g * n_t + t] = behind / pool_end if live else 0.0
                        test_den[g * n_t + t] = 1.0 if live else 0.0
                    num = 0.0
                    den = 0.0
                    for u in range(max(t - cd.trg_periods[g] + 1, 0), t + 1):
                        num += test_num[g * n_t + u]
                        den += test_den[g * n_t + u]
                    if kind == TRG_DELINQUENCY:
                        value = num / den if den > EPS else 0.0
                        breached = value > thr
                    elif den > EPS:
                        value = num / den
                        breached = value < thr
                    else:
                        value = np.inf
                elif kind == TRG_LOAN_TO_VALUE:  # ---- covenants
                    notes = bal.sum()
                    if cd_trg_group[g] >= 0:
                        notes = _group_sum(cd_grp_ptr, cd_grp_item, bal, cd_trg_group[g])
                    valuation = _amount(
                        cd, cd.trg_valuation[g], t, pool_start, pool_end, bal, int_due_total, pq
                    )
                    if valuation > EPS:
                        value = notes / valuation
                    else:
                        value = np.inf if notes > EPS else 0.0
                    breached = value > thr
                elif kind == TRG_RESERVE_BELOW_TARGET:
                    k = cd_trg_account[g]
                    target = _account_target(
                        cd, k, t, False, False, pool_start, pool_end, bal, int_due_total, pq
                    )
                    value = acc_bal[k] / target if target > EPS else np.inf
                    breached = value < (thr if thr > 0.0 else 1.0) - RATIO_TOL
                elif kind == TRG_OVERCOLLATERALISATION:
                    notes = _group_sum(cd_grp_ptr, cd_grp_item, bal, cd_trg_group[g])
                    value = pool_start / notes if notes > EPS else np.inf
                    breached = value < thr
                elif kind == TRG_INTEREST_SHORTFALL:
                    # unpaid interest of the tested tranches whose interest may not defer
                    value = 0.0
                    for j in range(cd_grp_ptr[cd_trg_group[g]], cd_grp_ptr[cd_trg_group[g] + 1]):
                        k = cd_grp_item[j]
                        if not cd_tr_defer[k]:
                            value += arrears[k]
                    breached = value > EPS
                elif kind == TRG_PRINCIPAL_DEFICIENCY:
                    # the ledger over the original balance of the tested tranches (or the pool)
                    base = cd_original_pool_balance
                    if cd_trg_group[g] >= 0:
                        base = _group_sum(cd_grp_ptr, cd_grp_item, cd_tr_balance, cd_trg_group[g])
                    value = pdl / base if base > 0.0 else 0.0
                    breached = pdl > EPS and value > thr
                elif kind == TRG_OBLIGOR_DEFAULT:
                    breached = t >= support_stop[cd_trg_obligor[g]]
                    value = 1.0 if breached else 0.0
                elif kind == TRG_UNINVESTED_CASH:
                    value = uninvested / cd_original_pool_balance if cd_original_pool_balance > 0 else 0.0
                    breached = uninvested > EPS and value > thr
                elif kind == TRG_PUT_UNFUNDED:  # ---- note options
                    # puts of the tested tranches left unfunded on an earlier date
                    value = 0.0
                    for j in range(cd_grp_ptr[cd_trg_group[g]], cd_grp_ptr[cd_trg_group[g] + 1]):
                        k = cd_grp_item[j]
                        tp = cd_tr_put_period[k]
                        if tp >= 0 and tp < t:
                            value += out_tranche[tp, k, TR_PUT_UNFUNDED]
                    breached = value > EPS
                if breached:
                    breaches[g] += 1
                else:
                    breaches[g] = 0
                if breaches[g] >= cd_trg_consecutive[g]:
                    active[g] = 1
                elif cd_trg_curable[g] and not breached:
                    active[g] = 0
                pq[N_PERIOD_QUANTITIES + g] = value  # ---- covenants: trigger(NAME) reads it
                if full:
                    out_trigger[t, g, TRG_VALUE] = value
                    out_trigger[t, g, TRG_BREACHED] = 1.0 if breached else 0.0
                    out_trigger[t, g, TRG_ACTIVE] = 1.0 if active[g] == 1 else 0.0
                if active[g] == 1:
                    if cd_trg_sequential[g]:
                        sequential = True
                    trap_share = max(trap_share, cd_trg_trap[g])
                    if cd_trg_waterfall[g] >= 0 and (wf == cd_normal_waterfall or cd_trg_waterfall[g] > wf):
                        wf = cd_trg_waterfall[g]
            if wf == cd_normal_waterfall or all_due:
                break
        accelerated = wf != cd_normal_waterfall
        pq[PQ_ALL_DUE] = 1.0 if accelerated or issuer_called else 0.0
        revolving = False
        if revolves:
            for g in range(n_trg):  # an early amortisation event ends the revolving period for good
                if active[g] == 1 and cd_trg_end_revolving[g]:
                    revolving_ended = True
            revolving = t <= cd.rv_last and not revolving_ended and not called
        hedge_received = 0.0  # ---- hedges: settle, or terminate, each hedge
        hedge_paid = 0.0
        if n_hg > 0:
            for h in range(n_hg):
                defaulted = t >= support_stop[cd.hg_stop[h]]
                notional = 0.0
                trust_leg = 0.0
                cp_leg = 0.0
                received = 0.0
                if hg_done[h] == 0.0 and outstanding > EPS:
                    n_now = _amount(cd, cd.hg_notional[h], t, pool_start, pool_end, bal, int_due_total, pq)
                    if defaulted or (cd.hg_on_switch[h] == 1 and accelerated):
                        # terminated at its mark-to-market: owed by the trust, it waits for a
                        # pay_hedge_termination step; owed to it, a defaulted counterparty
                        # pays the stated recovery share of it
                        value = _hedge_value(cd, h, t, n_now)
                        hg_done[h] = 1.0
                        if value < 0.0:
                            hg_term[h] += -value
                        else:
                            received = value * (cd.hg_recovery[h] if defaulted else 1.0)
                        if full:
                            out_hedge[t, h, HG_TERMINATION] = value
                    elif cd.hg_live[h, t] == 1:
                        notional = n_now
                        trust_leg = notional * cd.hg_pay_rate[h, t] * cd.hg_year_frac[h, t]
                        cp_leg = notional * cd.hg_recv_rate[h, t] * cd.hg_year_frac[h, t]
                        if cp_leg >= trust_leg:
                            received = cp_leg - trust_leg
                        else:
                            hg_owed[h] += trust_leg - cp_leg
                hedge_received += received
                if full:
                    out_hedge[t, h, HG_NOTIONAL] = notional
                    out_hedge[t, h, HG_TRUST_LEG] = trust_leg
                    out_hedge[t, h, HG_COUNTERPARTY_LEG] = cp_leg
                    out_hedge[t, h, HG_DUE] = hg_owed[h]
                    out_hedge[t, h, HG_RECEIVED] = received
                    out_hedge[t, h, HG_DEFAULTED] = 1.0 if defaulted else 0.0
                    out_hedge[t, h, HG_TERMINATED] = hg_done[h]
            # receipts are income collections of the period
            avail_i += hedge_received
            income_coll += hedge_received
            if cd.period_quantities:
                pq[1] = income_coll
            if full:
                row[D_INCOME_COLLECTIONS] = income_coll
        if full:
            row[D_REVOLVING] = 1.0 if revolving else 0.0
            row[D_WATERFALL] = wf
            row[D_SEQUENTIAL] = 1.0 if sequential else 0.0
            row[D_TRAP_SHARE] = trap_share

        for k in range(n_tr):
            if accelerated or last or t >= cd_tr_due_period[k]:
                prin_due[k] = bal[k]
            elif cd_tr_schedule[k, t] < bal[k]:
                prin_due[k] = bal[k] - cd_tr_schedule[k, t]
            else:
                prin_due[k] = 0.0
            if issuer_called:  # ---- note options
                prin_due[k] = bal[k]
            out_tranche[t, k, TR_PRINCIPAL_DUE] = prin_due[k]

        # 4. account releases ----------------------------------------------------------
        for k in range(n_acc):
            if full:
                out_account[t, k, ACC_START] = acc_bal[k]
            release = 0.0
            if cd_acc_kind[k] == ACC_TRAP:
                if trap_share <= 0.0 or accelerated or last:
                    release = acc_bal[k]
            else:
                target = _account_target(
                    cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total, pq
                )
                if last or (accelerated and not cd.acc_keep[k]) or bal.sum() <= EPS:
                    release = acc_bal[k]
                elif cd_acc_release[k] and acc_bal[k] > target:
                    release = acc_bal[k] - target
            if release > 0.0:
                acc_bal[k] -= release
                if cd_acc_to_principal[k]:
                    avail_p += release
                else:
                    avail_i += release
                out_account[t, k, ACC_WITHDRAWAL] += release
                withdraw_total += release

        # 5. steps ---------------------------------------------------------------------
        # A waterfall without ledgers pays from one pot of all cash. With ledgers, its income
        # steps come first and pay from income cash, then its principal steps from principal
        # cash; principal that pays fees or interest is recorded in the principal deficiency
        # ledger, which income moved to principal (to_principal) clears.
        on_principal = False
        split = cd_st_pot[cd_wf_ptr[wf]] != POT_COMBINED  # the waterfall has ledgers
        if split:
            avail = avail_i
        else:
            avail = avail_i + avail_p
            avail_p = 0.0
        for st in range(cd_wf_ptr[wf], cd_wf_ptr[wf + 1]):
            op = cd_st_op[st]
            a = cd_st_a[st]
            if split and not on_principal and cd_st_pot[st] == POT_PRINCIPAL:
                avail_i = avail
                avail = avail_p
                on_principal = True
            if op == OP_PAY_FEE or op == OP_PAY_FEE_ABOVE_CAP:
                # a fee's due amount, or what accrued above its annual cap (owed junior)
                capped = op == OP_PAY_FEE_ABOVE_CAP
                owed = fee_above_cap if capped else fee_due
                total = _group_sum(cd_grp_ptr, cd_grp_item, owed, a)
                pay = min(avail, total)
                if pay > EPS:
                    paid_to = out_fee[t, :, FEE_ABOVE_CAP_PAID if capped else FEE_PAID]
                    _pay_group(cd_grp_ptr, cd_grp_item, a, owed, paid_to, pay, total)
                    avail -= pay
                    paid_total += pay
                    if on_principal:
                        principal_used += pay
            elif op == OP_PAY_INTEREST:
                total = _group_sum(cd_grp_ptr, cd_grp_item, int_due, a)
                pay = min(avail, total)
                if pay > EPS:
                    paid_to = out_tranche[t, :, TR_INTEREST_PAID]
                    _pay_group(cd_grp_ptr, cd_grp_item, a, int_due, paid_to, pay, total)
                    avail -= pay
                    paid_total += pay
                    if on_principal:
                        principal_used += pay
            elif op == OP_TO_PRINCIPAL:  # income steps only (validated)
                if a == TO_PRINCIPAL_DEFICIENCY:
                    x = min(avail, pdl)
                elif a == TO_PRINCIPAL_ALL:
                    x = avail
                else:
                    x = min(avail, _amount(cd, cd_st_b[st], t, pool_start, pool_end, bal, int_due_total, pq))
                if x > EPS:
                    avail -= x
                    avail_p += x
                    to_principal_total += x
                    pdl = max(pdl - x, 0.0)
                    pq[6] = pdl
            elif op == OP_BUY_ASSETS:
                if revolving:
                    x = buy(cd, rv, t, avail, pool_end)
                    if x > 0.0:
                        par = x / cd.rv_price
                        bought += par
                        pool_end += par
                        avail -= x
                        purchase_paid += x
                    kept += avail  # what could not be spent waits for the next date
                    avail = 0.0
            elif op == OP_PAY_PRINCIPAL:
                limit = cd_st_c[st]
                cap = avail
                # at legal final and after a switch everything is due: limits and targets lapse
                ends = last or accelerated or issuer_called
                if limit == LIMIT_PRINCIPAL_COLLECTIONS and not ends:
                    cap = min(cap, principal_coll)
                if limit == LIMIT_DUE:
                    cap = min(cap, _group_sum(cd_grp_ptr, cd_grp_item, prin_due, a))
                group_bal = _group_sum(cd_grp_ptr, cd_grp_item, bal, a)
                if cd_st_d[st] >= 0 and not ends:
                    target = _amount(cd, cd_st_d[st], t, pool_start, pool_end, bal, int_due_total, pq)
                    cap = min(cap, max(group_bal - target, 0.0))
                cap = min(cap, group_bal)
                if cap > EPS:
                    pro_rata = cd_st_b[st] == 1 and not sequential
                    paid = 0.0
                    if pro_rata:
                        basis = (
                            _group_sum(cd_grp_ptr, cd_grp_item, prin_due, a)
                            if limit == LIMIT_DUE
                            else group_bal
                        )
                        share = cap / basis if basis > 0.0 else 0.0
                        for j in range(np.uint64(cd_grp_ptr[a]), np.uint64(cd_grp_ptr[a + 1])):
                            k = np.uint64(cd_grp_item[j])
                            w = prin_due[k] if limit == LIMIT_DUE else bal[k]
                            x = min(w * share, bal[k])
                            bal[k] -= x
                            prin_due[k] = max(prin_due[k] - x, 0.0)
                            out_tranche[t, k, TR_PRINCIPAL_PAID] += x
                            paid += x
                    else:
                        left = cap
                        for j in range(np.uint64(cd_grp_ptr[a]), np.uint64(cd_grp_ptr[a + 1])):
                            k = np.uint64(cd_grp_item[j])
                            room = prin_due[k] if limit == LIMIT_DUE else bal[k]
                            x = min(left, room)
                            bal[k] -= x
                            prin_due[k] = max(prin_due[k] - x, 0.0)
                            out_tranche[t, k, TR_PRINCIPAL_PAID] += x
                            left -= x
                            paid += x
                    avail -= paid
                    principal_coll = max(principal_coll - paid, 0.0)
                    paid_total += paid
            elif op == OP_FUND_ACCOUNT:
                target = _account_target(
                    cd, a, t, last, accelerated, pool_start, pool_end, bal, int_due_total, pq
                )
                x = min(avail, max(target - acc_bal[a], 0.0))
                if x > EPS:
                    acc_bal[a] += x
                    avail -= x
                    out_account[t, a, ACC_DEPOSIT] += x
                    deposit_total += x
            elif op == OP_TRAP_CASH:
                # nothing is kept back once the deal ends or accelerates
                x = 0.0 if (last or accelerated) else trap_share * avail
                if x > EPS:
                    acc_bal[a] += x
                    avail -= x
                    out_account[t, a, ACC_DEPOSIT] += x
                    deposit_total += x
            elif op == OP_DRAW:
                # Draw only the deficit the cash in hand cannot meet, and pay it straight to
                # the covered claims in order: placed after the payments it backs up, this is
                # the unpaid part; placed before them, the later steps pay the rest from cash.
                src = cd_st_b[st]
                grp = cd_st_c[st]
                need_total = 0.0
                for j in range(np.uint64(cd_grp_ptr[grp]), np.uint64(cd_grp_ptr[grp + 1])):
                    need_total += _claim_due(
                        cd_claim_index,
                        cd_claim_kind,
                        cd_grp_item[j],
                        fee_due,
                        int_due,
                        prin_due,
                        bal,
                        t,
                        last,
                        cd_tr_due_period,
                    )
                if a == 0:  # an account
                    room = acc_bal[src]
                elif t >= support_stop[src]:  # the provider has defaulted
                    room = 0.0
                elif cd_sup_kind[src] == SUP_DEFICIENCY:
                    room = min(
                        cd_sup_cap_period[src] - sup_period[src], cd_sup_cap_total[src] - sup_total[src]
                    )
                else:
                    room = cd_sup_cap_total[src] - lf_outstanding[src]
                x_total = min(max(need_total - avail, 0.0), max(room, 0.0))
                if x_total > EPS:
                    if a == 0:
                        acc_bal[src] -= x_total
                        out_account[t, src, ACC_WITHDRAWAL] += x_total
                        withdraw_total += x_total
                    else:
                        sup_period[src] += x_total
                        sup_total[src] += x_total
                        if cd_sup_kind[src] != SUP_DEFICIENCY or cd_sup_reimbursable[src]:
                            lf_outstanding[src] += x_total
                        out_support[t, src, SUP_DRAW] += x_total
                        draws_total += x_total
                    left = x_total
                    for j in range(np.uint64(cd_grp_ptr[grp]), np.uint64(cd_grp_ptr[grp + 1])):
                        c = np.uint64(cd_grp_item[j])
                        ci = np.uint64(cd_claim_index[c])
                        x = min(
                            left,
                            _claim_due(
                                cd_claim_index,
                                cd_claim_kind,
                                c,
                                fee_due,
                                int_due,
                                prin_due,
                                bal,
                                t,
                                last,
                                cd_tr_due_period,
                            ),
                        )
                        if x <= 0.0:
                            continue
                        left -= x
                        ck = cd_claim_kind[c]
                        if ck == CLAIM_FEE:
                            fee_due[ci] -= x
                            out_fee[t, ci, FEE_PAID] += x
                        elif ck == CLAIM_INTEREST:
                            int_due[ci] -= x
                            out_tranche[t, ci, TR_INTEREST_PAID] += x
                            out_tranche[t, ci, TR_SUPPORT_RECEIVED] += x
                        else:
                            bal[ci] -= x
                            prin_due[ci] = max(prin_due[ci] - x, 0.0)
                            out_tranche[t, ci, TR_PRINCIPAL_PAID] += x
                            out_tranche[t, ci, TR_SUPPORT_RECEIVED] += x
                        paid_total += x
            elif op == OP_REPAY_LIQUIDITY or op == OP_REIMBURSE:
                # interest runs on what was outstanding since the last date, not on today's draws
                interest = lf_start[a] * cd_sup_rate[a] * yf + lf_int_arrears[a]
                xi = min(avail, interest)
                lf_int_arrears[a] = interest - xi
                avail -= xi
                xp = min(avail, lf_outstanding[a])
                lf_outstanding[a] -= xp
                avail -= xp
                out_support[t, a, SUP_INTEREST_PAID] += xi
                out_support[t, a, SUP_REPAID] += xp
                out_support[t, a, SUP_REIMBURSED] += xi + xp
                paid_total += xi + xp
                if on_principal:
                    principal_used += xi
            elif op == OP_PAY_HEDGE or op == OP_PAY_HEDGE_TERMINATION:  # ---- hedges
                owed_h = hg_owed if op == OP_PAY_HEDGE else hg_term
                x = min(avail, owed_h[a])
                if x > EPS:
                    owed_h[a] -= x
                    avail -= x
                    paid_total += x
                    hedge_paid += x
                    if on_principal:
                        principal_used += x
                    if full:
                        out_hedge[t, a, HG_PAID if op == OP_PAY_HEDGE else HG_TERMINATION_PAID] += x
            elif op == OP_PAY_RESIDUAL:
                if avail > EPS:
                    x = min(avail, bal[a])
                    bal[a] -= x
                    prin_due[a] = max(prin_due[a] - x, 0.0)
                    out_tranche[t, a, TR_PRINCIPAL_PAID] += x
                    out_tranche[t, a, TR_RESIDUAL_PAID] += avail - x
                    paid_total += avail
                    avail = 0.0

        # 6. close the period ----------------------------------------------------------
        if on_principal:
            avail_p = avail + kept
        else:
            avail_i = avail + kept
        uninvested = kept
        if principal_used > 0.0:
            pdl += principal_used
            pq[6] = pdl
        if fee_caps:
            for f in range(n_fee):  # what the senior position paid counts towards the annual cap
                fee_year_paid[f] += fee_due_start[f] - fee_due[f]
        for k in range(n_tr):
            arrears[k] = int_due[k] if int_due[k] > EPS else 0.0
            if bal[k] < EPS:
                bal[k] = 0.0
            out_tranche[t, k, TR_BALANCE_END] = bal[k]
            out_tranche[t, k, TR_INTEREST_ARREARS] = arrears[k]
        for f in range(n_fee):
            fee_arrears[f] = fee_due[f] if fee_due[f] > EPS else 0.0
        for h in range(n_hg):  # ---- hedges: what stays unpaid is carried
            if hg_owed[h] <= EPS:
                hg_owed[h] = 0.0
            if hg_term[h] <= EPS:
                hg_term[h] = 0.0
            if full:
                out_hedge[t, h, HG_UNPAID] = hg_owed[h]
                out_hedge[t, h, HG_TERMINATION_UNPAID] = hg_term[h]
        if cd_put_any == 1:  # ---- note options: investor puts, after the date's payments
            _settle_puts(cd, t, bal, support_stop, out_tranche, out_support, full)
        carry = avail_i + avail_p
        carry_p = avail_p
        if full:
            for f in range(n_fee):
                out_fee[t, f, FEE_ARREARS] = fee_arrears[f]
                out_fee[t, f, FEE_ABOVE_CAP] = fee_above_cap[f]
            for k in range(n_acc):
                out_account[t, k, ACC_END] = acc_bal[k]
                out_account[t, k, ACC_TARGET] = _account_target(
                    cd, k, t, last, accelerated, pool_start, pool_end, bal, int_due_total, pq
                )
            for s in range(n_sup):
                out_support[t, s, SUP_OUTSTANDING] = lf_outstanding[s]
                out_support[t, s, SUP_CUMULATIVE_DRAW] = sup_total[s]
                out_support[t, s, SUP_UNREIMBURSED] = lf_outstanding[s] + lf_int_arrears[s]
            row[D_SUPPORT_DRAWS] = draws_total
            row[D_ACCOUNT_WITHDRAWALS] = withdraw_total
            row[D_PAYMENTS] = paid_total
            row[D_ACCOUNT_DEPOSITS] = deposit_total
            row[D_CARRY_OUT] = carry
            row[D_TO_PRINCIPAL] = to_principal_total
            row[D_PRINCIPAL_USED] = principal_used
            row[D_PRINCIPAL_DEFICIENCY] = pdl
            row[D_PRINCIPAL_CARRIED] = carry_p
            row[D_POOL_BALANCE] = pool_end
            row[D_PURCHASED] = bought
            row[D_PURCHASE_PRICE] = purchase_paid
            row[D_UNINVESTED] = kept
            row[D_PURCHASED_COLLECTIONS] = purchased_cash
            row[D_HEDGE_RECEIVED] = hedge_received  # ---- hedges
            row[D_HEDGE_PAID] = hedge_paid
            if revolves:
                row[D_PURCHASED_DEFAULTS] = rv.flow[F_DEFAULT]
                row[D_PURCHASED_BALANCE] = (0.0 if called else rv.flow[F_BALANCE_END]) + bought


# The same function (one priority of payments), compiled inline into the Monte Carlo's loop
# over paths (see ipabs.risk.montecarlo_numba_fns.simulate_rows); with JIT off, the function itself.
waterfall_path_inline = njit(leaf=True, inline="always")(getattr(waterfall_path, "py_func", waterfall_path))
