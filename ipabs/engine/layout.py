"""The compiled form of a deal: the arrays and integer codes the waterfall kernel reads, and
the layout of the tables it writes. Kernels see only these; names stop at the compile step."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ipabs._jit import njit

# ---- quantity codes (amount formulas, fee bases)
Q_POOL_BALANCE = 0
Q_POOL_BALANCE_START = 1
Q_ORIGINAL_POOL_BALANCE = 2
Q_NOTES_BALANCE = 3
Q_BALANCE = 4  # of a tranche group
Q_ORIGINAL_BALANCE = 5  # of a tranche group
Q_INTEREST_DUE = 6  # of a tranche group, this period
# ---- ledgers: this period's collections and the principal deficiency ledger
Q_INTEREST_COLLECTIONS = 7
Q_INCOME_COLLECTIONS = 8
Q_PRINCIPAL_COLLECTIONS = 9
Q_COLLECTIONS = 10
Q_ROYALTY_COLLECTIONS = 11
Q_DEFAULTS = 12
Q_PRINCIPAL_DEFICIENCY = 13
# ---- covenants: test quantities (computed when the triggers are tested)
Q_CUMULATIVE_DEFAULT_RATE = 14
Q_EXCESS_SPREAD = 15
Q_DSCR = 16  # of a tranche group
Q_OVERCOLLATERALISATION = 17  # of a tranche group
Q_NEXT_INTEREST = 18  # of a tranche group, over the amount's horizon (amt_horizon)
Q_NEXT_FEES = 19  # over the amount's horizon
Q_TRIGGER = 20  # the value of a trigger (its index in amt_group)
# ---- collateral value
Q_COLLATERAL_VALUE = 21  # pledged IP of performing assets and royalty catalogues, period start
# ---- delinquency: balances behind at the end of the period, servicer advances outstanding
Q_DELINQUENT_30 = 22
Q_DELINQUENT_60 = 23
Q_DELINQUENT_90 = 24
Q_ADVANCES_OUTSTANDING = 25
# The period's quantity vector: codes Q_INTEREST_COLLECTIONS..Q_EXCESS_SPREAD are read from
# its first slots, then the scalars the test quantities need, then each trigger's value.
PQ_SENIOR_FEES = 9
PQ_ALL_DUE = 10  # 1 when every balance is due (switched waterfall, issuer call)
PQ_PERIOD = 11
PQ_COLLATERAL_VALUE = 12  # ---- collateral value (collections column C_COLLATERAL_VALUE)
# ---- delinquency: Q_DELINQUENT_30 .. Q_ADVANCES_OUTSTANDING read these slots in order
PQ_DELINQUENT_30 = 13
N_PERIOD_QUANTITIES = 17
QUANTITY_CODES = {
    "pool_balance": Q_POOL_BALANCE,
    "pool_balance_start": Q_POOL_BALANCE_START,
    "original_pool_balance": Q_ORIGINAL_POOL_BALANCE,
    "notes_balance": Q_NOTES_BALANCE,
    "balance": Q_BALANCE,
    "original_balance": Q_ORIGINAL_BALANCE,
    "interest_due": Q_INTEREST_DUE,
    "interest_collections": Q_INTEREST_COLLECTIONS,
    "income_collections": Q_INCOME_COLLECTIONS,
    "principal_collections": Q_PRINCIPAL_COLLECTIONS,
    "collections": Q_COLLECTIONS,
    "royalty_collections": Q_ROYALTY_COLLECTIONS,
    "defaults": Q_DEFAULTS,
    "principal_deficiency": Q_PRINCIPAL_DEFICIENCY,
    "cumulative_default_rate": Q_CUMULATIVE_DEFAULT_RATE,
    "excess_spread": Q_EXCESS_SPREAD,
    "dscr": Q_DSCR,
    "overcollateralisation": Q_OVERCOLLATERALISATION,
    "next_interest": Q_NEXT_INTEREST,
    "next_fees": Q_NEXT_FEES,
    "trigger": Q_TRIGGER,
    "collateral_value": Q_COLLATERAL_VALUE,
    # ---- delinquency
    "delinquent_30": Q_DELINQUENT_30,
    "delinquent_60": Q_DELINQUENT_60,
    "delinquent_90": Q_DELINQUENT_90,
    "advances_outstanding": Q_ADVANCES_OUTSTANDING,
}

# ---- amount kinds
AMT_FIXED = 0
AMT_FORMULA = 1
AMT_SCHEDULE = 2

# ---- fee kinds
FEE_ANNUAL = 0
FEE_PERIOD = 1
FEE_RATE = 2
FEE_AMOUNT = 3  # a per-period amount (formula or schedule), not annualised

# ---- account kinds
ACC_RESERVE = 0
ACC_TRAP = 1

# ---- support kinds
SUP_DEFICIENCY = 0
SUP_LIQUIDITY = 1
# ---- note options
SUP_LIQUIDITY_SUPPORT = 11  # buys the notes put back on a put date (never drawn by a step)

# ---- claim kinds (what a draw covers)
CLAIM_FEE = 0
CLAIM_INTEREST = 1
CLAIM_PRINCIPAL = 2
# ---- support
CLAIM_PRINCIPAL_AT_FINAL = 3  # principal unpaid at the legal final date only
CLAIM_PRINCIPAL_AT_MATURITY = 4  # principal unpaid from the tranche's expected maturity on

# ---- trigger kinds
TRG_CUMULATIVE_DEFAULT = 0
TRG_DSCR = 1
TRG_RESERVE_BELOW_TARGET = 2
TRG_OVERCOLLATERALISATION = 3
TRG_INTEREST_SHORTFALL = 4
# ---- ledgers
TRG_PRINCIPAL_DEFICIENCY = 5
# ---- revolving
TRG_OBLIGOR_DEFAULT = 6
TRG_UNINVESTED_CASH = 11
TRIGGER_CODES = {
    "cumulative_default_rate": TRG_CUMULATIVE_DEFAULT,
    "dscr": TRG_DSCR,
    "reserve_below_target": TRG_RESERVE_BELOW_TARGET,
    "overcollateralisation": TRG_OVERCOLLATERALISATION,
    "interest_shortfall": TRG_INTEREST_SHORTFALL,
    "principal_deficiency": TRG_PRINCIPAL_DEFICIENCY,
    "obligor_default": TRG_OBLIGOR_DEFAULT,
    "uninvested_cash": TRG_UNINVESTED_CASH,
}
# ---- note options
TRG_PUT_UNFUNDED = 7
TRIGGER_CODES["put_unfunded"] = TRG_PUT_UNFUNDED
# ---- covenants
TRG_COLLECTIONS_VS_PROJECTION = 12
TRG_EXCESS_SPREAD = 13
TRG_LOAN_TO_VALUE = 14
TRIGGER_CODES["collections_vs_projection"] = TRG_COLLECTIONS_VS_PROJECTION
TRIGGER_CODES["excess_spread"] = TRG_EXCESS_SPREAD
TRIGGER_CODES["loan_to_value"] = TRG_LOAN_TO_VALUE
# ---- delinquency
TRG_DELINQUENCY = 24
TRIGGER_CODES["delinquency"] = TRG_DELINQUENCY

# ---- step opcodes; arguments a, b, c, d per opcode
OP_PAY_FEE = 0  # a: group of fees
OP_PAY_INTEREST = 1  # a: group of tranches
OP_PAY_PRINCIPAL = 2  # a: group of tranches, b: mode (0 sequential, 1 pro rata), c: limit, d: amount or -1
OP_FUND_ACCOUNT = 3  # a: account
OP_DRAW = 4  # a: 0 account / 1 support, b: its index, c: group of claims
OP_TRAP_CASH = 5  # a: account
OP_REPAY_LIQUIDITY = 6  # a: support
OP_PAY_RESIDUAL = 7  # a: tranche
# ---- ledgers
OP_TO_PRINCIPAL = 8  # a: 0 the deficiency, 1 all cash left, 2 an amount; b: amount index or -1
OP_PAY_FEE_ABOVE_CAP = 9  # a: group of fees
# ---- revolving
OP_BUY_ASSETS = 10
# ---- support
OP_REIMBURSE = 14  # a: support
STEP_CODES = {
    "pay_fee": OP_PAY_FEE,
    "pay_interest": OP_PAY_INTEREST,
    "pay_principal": OP_PAY_PRINCIPAL,
    "fund_account": OP_FUND_ACCOUNT,
    "draw": OP_DRAW,
    "trap_cash": OP_TRAP_CASH,
    "repay_liquidity": OP_REPAY_LIQUIDITY,
    "pay_residual": OP_PAY_RESIDUAL,
    "to_principal": OP_TO_PRINCIPAL,
    "pay_fee_above_cap": OP_PAY_FEE_ABOVE_CAP,
    "buy_assets": OP_BUY_ASSETS,
    # ---- support
    "reimburse": OP_REIMBURSE,
}
# ---- hedges
OP_PAY_HEDGE = 20  # a: hedge
OP_PAY_HEDGE_TERMINATION = 21  # a: hedge
STEP_CODES["pay_hedge"] = OP_PAY_HEDGE
STEP_CODES["pay_hedge_termination"] = OP_PAY_HEDGE_TERMINATION
# the cash a step pays from
POT_COMBINED = 0  # a waterfall without ledgers: all cash in one pot
POT_INCOME = 1
POT_PRINCIPAL = 2
TO_PRINCIPAL_DEFICIENCY = 0
TO_PRINCIPAL_ALL = 1
TO_PRINCIPAL_AMOUNT = 2
# loss allocation
WRITE_DOWN_NONE = 0
WRITE_DOWN_AT_DEFAULT = 1
WRITE_DOWN_AT_LIQUIDATION = 2
# principal deficiency ledger debits (bit flags)
PDL_DEBIT_DEFAULTS = 1
PDL_DEBIT_LOSSES = 2
LIMIT_AVAILABLE = 0
LIMIT_PRINCIPAL_COLLECTIONS = 1
LIMIT_DUE = 2
LIMIT_CODES = {
    "available": LIMIT_AVAILABLE,
    "principal_collections": LIMIT_PRINCIPAL_COLLECTIONS,
    "due": LIMIT_DUE,
}


class CompiledDeal(NamedTuple):
    """A deal as flat arrays. Dimensions: T periods, N tranches, F fees, K accounts,
    S supports, G triggers, W waterfalls, P steps, M amounts."""

    n_periods: int
    year_frac: np.ndarray  # (T,) note day-count fraction of each period
    tr_balance: np.ndarray  # (N,)
    tr_rate: np.ndarray  # (N, T) annual coupon in each period
    tr_defer: np.ndarray  # (N,) 1 when unpaid interest may defer
    tr_due_period: np.ndarray  # (N,) period from which the whole balance is due
    tr_schedule: np.ndarray  # (N, T) target balance after each period (inf: none)
    fee_kind: np.ndarray  # (F,)
    fee_amount: np.ndarray  # (F,) annual amount, period amount or rate
    fee_base: np.ndarray  # (F,) quantity code
    fee_base_group: np.ndarray  # (F,)
    fee_senior: np.ndarray  # (F,)
    grp_ptr: np.ndarray  # ragged lists of indices (tranches, fees or claims)
    grp_item: np.ndarray
    amt_kind: np.ndarray  # (M,)
    amt_quantity: np.ndarray  # (M,)
    amt_group: np.ndarray  # (M,)
    amt_share: np.ndarray  # (M,)
    amt_floor: np.ndarray  # (M,)
    amt_cap: np.ndarray  # (M,)
    amt_value: np.ndarray  # (M, T) fixed amounts and schedules, per period
    acc_kind: np.ndarray  # (K,)
    acc_initial: np.ndarray  # (K,)
    acc_target: np.ndarray  # (K,) amount index
    acc_floor: np.ndarray  # (K,)
    acc_release: np.ndarray  # (K,)
    sup_kind: np.ndarray  # (S,)
    sup_cap_period: np.ndarray  # (S,)
    sup_cap_total: np.ndarray  # (S,)
    sup_rate: np.ndarray  # (S,) liquidity interest rate
    claim_kind: np.ndarray  # (C,)
    claim_index: np.ndarray  # (C,)
    trg_kind: np.ndarray  # (G,)
    trg_threshold: np.ndarray  # (G, T)
    trg_group: np.ndarray  # (G,) tranche group or -1
    trg_account: np.ndarray  # (G,) or -1
    trg_consecutive: np.ndarray  # (G,)
    trg_curable: np.ndarray  # (G,)
    trg_sequential: np.ndarray  # (G,)
    trg_trap: np.ndarray  # (G,)
    trg_waterfall: np.ndarray  # (G,) or -1
    wf_ptr: np.ndarray  # (W+1,)
    normal_waterfall: int
    st_op: np.ndarray  # (P,)
    st_a: np.ndarray
    st_b: np.ndarray
    st_c: np.ndarray
    st_d: np.ndarray
    call_threshold: float  # share of the original pool; negative: no call
    call_price: float
    original_pool_balance: float
    # ---- ledgers
    st_pot: np.ndarray  # (P,) POT_* the step pays from
    fee_cap_year: np.ndarray  # (F,) most paid per deal year in the senior position (inf: none)
    year_id: np.ndarray  # (T,) deal year of each payment date (0: the first 12 months)
    acc_to_principal: np.ndarray  # (K,) 1 when the account's releases go to the principal ledger
    rec_principal_share: float  # share of recoveries that are principal collections
    pdl_debits: int  # PDL_DEBIT_* flags besides principal used for fees and interest
    write_down: int  # WRITE_DOWN_*
    write_down_group: int  # group of tranches written down, in order (-1: none)
    period_quantities: int  # 1 when an amount reads this period's collections or the ledger
    spread_read: int  # 1 when a trigger, amount or fee reads the period's excess spread
    # ---- revolving (see ipabs.engine.revolving.RevolvingTerms; J templates)
    rv_last: int  # last period whose payment date may buy (-1: no revolving)
    rv_price: float
    rv_share: np.ndarray  # (J,)
    rv_loan_size: np.ndarray  # (J,)
    rv_max_share: np.ndarray  # (J,)
    rv_eligible: np.ndarray  # (J, T)
    rv_int: np.ndarray  # (J, T, T) per unit of par bought in period s, at age a
    rv_prin: np.ndarray  # (J, T, T)
    rv_bal: np.ndarray  # (J, T, T)
    trg_end_revolving: np.ndarray  # (G,) 1 when the trigger ends the revolving period
    trg_obligor: np.ndarray  # (G,) obligor_default: index into the stop array (-1: none)
    # ---- support
    sup_reimbursable: np.ndarray  # (S,) 1 when a reimburse or repay_liquidity step names it
    # ---- note options
    icall_period: int  # first period whose payment date may see the issuer call (T: none)
    icall_factor: float  # exercised while pool balance < factor x original (inf: always)
    icall_price: float  # share of the performing balance paid
    icall_refinance: int  # 1: also only while icall_rate is below the notes' average coupon
    icall_rate: np.ndarray  # (T,) refinancing rate at each payment date
    tr_put_period: np.ndarray  # (N,) period whose payment date is the put date (-1: no put)
    tr_put_share: np.ndarray  # (N,) share of the balance put
    tr_put_supporter: np.ndarray  # (N,) liquidity support buying the notes (-1: no put)
    put_any: int  # 1 when some tranche has a put
    # ---- covenants
    trg_periods: np.ndarray  # (G,) trailing window in periods (1: this period alone)
    trg_of: np.ndarray  # (G,) collections_vs_projection: slot of the collections in pq
    trg_projection: np.ndarray  # (G, T) collections_vs_projection: the projected collections
    trg_valuation: np.ndarray  # (G,) loan_to_value: amount index of the valuation (-1: none)
    amt_horizon: np.ndarray  # (M, T) next_*: first period after the amount's horizon
    acc_keep: np.ndarray  # (K,) 1 when the account stays funded after a waterfall switch
    # ---- hedges (H hedges; see docs/hedges.md)
    hg_notional: np.ndarray  # (H,) amount index of the notional
    hg_pay_rate: np.ndarray  # (H, T) annual rate of the leg the trust pays (fixed, index or premium)
    hg_recv_rate: np.ndarray  # (H, T) annual rate of the counterparty's leg (index, fixed or caplet)
    hg_year_frac: np.ndarray  # (H, T) the hedge's day-count fraction of each period
    hg_discount: np.ndarray  # (H, T) discount factor from closing to each payment date (its index)
    hg_live: np.ndarray  # (H, T) 1 when the hedge settles the period
    hg_stop: np.ndarray  # (H,) index of the counterparty in the stop array
    hg_on_switch: np.ndarray  # (H,) 1 when a waterfall switch terminates it
    hg_recovery: np.ndarray  # (H,) share of a termination owed to the trust a defaulted counterparty pays
    # ---- delinquency
    trg_days: np.ndarray  # (G,) delinquency: first bucket counted (0: 30+, 1: 60+, 2: 90+ days)
    adv_on: int  # 1 when the servicer advances: bit 1 interest, bit 2 principal
    adv_stop: int  # index of the servicer in the stop array
    # ---- surveillance: a run from a report date (start_period 0: from closing, the rest unused)
    start_period: int = 0  # first period the waterfall runs
    start_work: np.ndarray = np.zeros(0)  # the waterfall's state after the period before (WORK_*)
    start_flags: np.ndarray = np.zeros(0, dtype=np.int64)  # its trigger breach counts and states
    start_scalars: np.ndarray = np.zeros(0)  # START_* (carry, ledger, cumulative defaults, ...)


# ---- surveillance: the scalars of a waterfall's state carried into its start period
START_CARRY = 0  # cash carried forward from the report date
START_CARRY_PRINCIPAL = 1  # the principal ledger's part of it
START_PDL = 2  # principal deficiency ledger balance
START_CUMULATIVE_DEFAULTS = 3  # defaulted balance since closing (cumulative default triggers)
START_YEAR = 4  # deal year of the period before (annual fee caps)
N_START_SCALARS = 5


def work_layout(cd: CompiledDeal) -> dict[str, slice]:
    """Where each part of the waterfall's ``work`` array sits, as ``waterfall_path`` lays it
    out (a run from a report date writes the deal's state into them)."""
    n_tr = cd.tr_balance.shape[0]
    n_fee = cd.fee_kind.shape[0]
    n_acc = cd.acc_kind.shape[0]
    n_sup = cd.sup_kind.shape[0]
    n_trg = cd.trg_kind.shape[0]
    n_amt = cd.amt_kind.shape[0]
    n_t = cd.n_periods
    n_hg = cd.hg_notional.shape[0]
    parts = (
        ("balance", n_tr),
        ("arrears", n_tr),
        ("interest_due", n_tr),
        ("interest_due_total", n_tr),
        ("principal_due", n_tr),
        ("fee_due", n_fee),
        ("fee_arrears", n_fee),
        ("account", n_acc),
        ("support_total", n_sup),
        ("support_period", n_sup),
        ("facility_outstanding", n_sup),
        ("facility_interest_arrears", n_sup),
        ("facility_start", n_sup),
        ("written_down", n_tr),
        ("fee_above_cap", n_fee),
        ("fee_year_paid", n_fee),
        ("fee_due_start", n_fee),
        ("period_quantities", N_PERIOD_QUANTITIES + n_trg + n_amt),
        ("test_numerator", n_trg * n_t),
        ("test_denominator", n_trg * n_t),
        ("hedge_owed", n_hg),
        ("hedge_termination", n_hg),
        ("hedge_done", n_hg),
        ("advances", 3),
    )
    out: dict[str, slice] = {}
    o = 0
    for name, n in parts:
        out[name] = slice(o, o + n)
        o += n
    return out


# ---- output tables: last axis of each
TR_BALANCE_START = 0
TR_INTEREST_DUE = 1
TR_INTEREST_PAID = 2
TR_PRINCIPAL_DUE = 3
TR_PRINCIPAL_PAID = 4
TR_RESIDUAL_PAID = 5
TR_BALANCE_END = 6
TR_INTEREST_ARREARS = 7
TR_SUPPORT_RECEIVED = 8
TR_WRITE_DOWN = 9  # principal written down this period
TR_WRITTEN_DOWN = 10  # principal written down so far
TRANCHE_FIELDS = (
    "balance_start",
    "interest_due",
    "interest_paid",
    "principal_due",
    "principal_paid",
    "residual_paid",
    "balance_end",
    "interest_shortfall",
    "support_received",
    "write_down",
    "written_down",
)
# ---- note options
TR_PUT_EXERCISED = 11  # balance put back on the put date (after the date's payments)
TR_PUT_UNFUNDED = 12  # the part of it the supporter did not buy: an event of default
TRANCHE_FIELDS = (*TRANCHE_FIELDS, "put_exercised", "put_unfunded")

FEE_DUE = 0
FEE_PAID = 1
FEE_ARREARS = 2
FEE_ABOVE_CAP_PAID = 3
FEE_ABOVE_CAP = 4  # accrued above the annual cap, unpaid at the end of the period
FEE_FIELDS = ("due", "paid", "unpaid", "above_cap_paid", "above_cap_unpaid")

ACC_START = 0
ACC_DEPOSIT = 1
ACC_WITHDRAWAL = 2
ACC_END = 3
ACC_TARGET = 4
ACCOUNT_FIELDS = ("balance_start", "deposit", "withdrawal", "balance_end", "target")

SUP_DRAW = 0
SUP_REPAID = 1
SUP_INTEREST_PAID = 2
SUP_OUTSTANDING = 3
SUP_CUMULATIVE_DRAW = 4
# ---- support
SUP_REIMBURSED = 5  # draws and interest paid back to the provider in the period
SUP_UNREIMBURSED = 6  # draws and interest still owed to the provider after the period
# ---- note options
SUP_PUT_BOUGHT = 7  # notes bought from holders who put, this period
SUP_NOTES_HELD = 8  # notes held from puts at the end of the period (they amortise with the tranche)
SUPPORT_FIELDS = (
    "draw",
    "principal_repaid",
    "interest_paid",
    "outstanding",
    "cumulative_draw",
    # ---- support
    "reimbursed",
    "unreimbursed",
    # ---- note options
    "put_bought",
    "notes_held",
)

TRG_VALUE = 0
TRG_BREACHED = 1
TRG_ACTIVE = 2
TRIGGER_FIELDS = ("value", "breached", "active")

D_COLLECTIONS = 0  # cash collected from the assets
D_CALL_PROCEEDS = 1
D_CARRY_IN = 2  # cash left from the previous period
D_SUPPORT_DRAWS = 3
D_ACCOUNT_WITHDRAWALS = 4
D_PAYMENTS = 5  # fees, interest, principal, residual, liquidity repayment
D_ACCOUNT_DEPOSITS = 6
D_CARRY_OUT = 7
D_WATERFALL = 8  # index of the waterfall that ran
D_SEQUENTIAL = 9
D_TRAP_SHARE = 10
D_CUMULATIVE_DEFAULTS = 11
D_POOL_BALANCE = 12  # performing balance at the end of the period (after a call: 0)
D_CALLED = 13
# ---- ledgers
D_INCOME_COLLECTIONS = 14  # income collections (interest, royalties, income share of recoveries)
D_PRINCIPAL_COLLECTIONS = 15  # principal collections, call proceeds included
D_TO_PRINCIPAL = 16  # income cash moved to the principal ledger
D_PRINCIPAL_USED = 17  # principal cash that paid fees and interest
D_PRINCIPAL_DEFICIENCY = 18  # principal deficiency ledger at the end of the period
D_PRINCIPAL_CARRIED = 19  # principal cash carried forward (part of cash_carried_forward)
D_WRITE_DOWN = 20  # principal written down
# ---- revolving
D_REVOLVING = 21  # 1 while the revolving period runs
D_PURCHASED = 22  # par of the assets bought
D_PURCHASE_PRICE = 23  # cash paid for them
D_UNINVESTED = 24  # cash a buy_assets step kept for the next date
D_PURCHASED_COLLECTIONS = 25  # collections from purchased assets (part of collections)
D_PURCHASED_DEFAULTS = 26  # purchased balance that defaulted
D_PURCHASED_BALANCE = 27  # performing balance of purchased assets at the end of the period
DEAL_FIELDS = (
    "collections",
    "call_proceeds",
    "cash_brought_forward",
    "support_draws",
    "account_withdrawals",
    "payments",
    "account_deposits",
    "cash_carried_forward",
    "waterfall",
    "sequential",
    "trap_share",
    "cumulative_defaults",
    "pool_balance",
    "called",
    "income_collections",
    "principal_collections",
    "income_to_principal",
    "principal_used_for_income",
    "principal_deficiency",
    "principal_carried_forward",
    "write_down",
    "revolving",
    "purchased",
    "purchase_price",
    "uninvested_cash",
    "purchased_collections",
    "purchased_defaults",
    "purchased_balance",
)
# ---- note options
D_CALL_KIND = 28  # why the pool was sold, on the call date: 1 clean-up call, 2 issuer call
DEAL_FIELDS = (*DEAL_FIELDS, "call_kind")
# ---- hedges
D_HEDGE_RECEIVED = len(DEAL_FIELDS)  # received from hedge counterparties (income collections)
D_HEDGE_PAID = D_HEDGE_RECEIVED + 1  # paid to hedge counterparties (part of payments)
DEAL_FIELDS = (*DEAL_FIELDS, "hedge_received", "hedge_paid")
# ---- delinquency: servicer advances (part of income and principal collections) and their
# repayment to the servicer (taken from collections before the priority of payments)
D_ADVANCED_INTEREST = len(DEAL_FIELDS)
D_ADVANCED_PRINCIPAL = D_ADVANCED_INTEREST + 1
D_ADVANCES_REPAID = D_ADVANCED_INTEREST + 2
D_ADVANCES_OUTSTANDING = D_ADVANCED_INTEREST + 3  # owed to the servicer at the end of the period
DEAL_FIELDS = (
    *DEAL_FIELDS,
    "advanced_interest",
    "advanced_principal",
    "advances_repaid",
    "advances_outstanding",
)

# ---- hedges: the hedge table, one row per hedge
HG_NOTIONAL = 0  # notional of the period (0 once terminated or outside its dates)
HG_TRUST_LEG = 1  # what the trust's leg owes for the period (fixed, floating or premium)
HG_COUNTERPARTY_LEG = 2  # what the counterparty's leg owes for the period
HG_DUE = 3  # the trust's net payment due, unpaid amounts of earlier dates included
HG_PAID = 4  # net payment paid by the trust's pay_hedge steps
HG_UNPAID = 5  # net payment unpaid after the date (carried)
HG_RECEIVED = 6  # received from the counterparty: net payments and termination amounts
HG_TERMINATION = 7  # on the termination date: the mark-to-market to the trust (negative: owed by it)
HG_TERMINATION_PAID = 8  # termination amount paid by pay_hedge_termination steps
HG_TERMINATION_UNPAID = 9  # termination amount owed by the trust, unpaid after the date
HG_DEFAULTED = 10  # 1 from the counterparty's default period on
HG_TERMINATED = 11  # 1 from the termination date on
HEDGE_FIELDS = (
    "notional",
    "trust_leg",
    "counterparty_leg",
    "due",
    "paid",
    "unpaid",
    "received",
    "termination",
    "termination_paid",
    "termination_unpaid",
    "counterparty_defaulted",
    "terminated",
)
N_HEDGE_FIELDS = len(HEDGE_FIELDS)


N_TRANCHE_FIELDS = len(TRANCHE_FIELDS)
N_FEE_FIELDS = len(FEE_FIELDS)
N_ACCOUNT_FIELDS = len(ACCOUNT_FIELDS)
N_SUPPORT_FIELDS = len(SUPPORT_FIELDS)
N_TRIGGER_FIELDS = len(TRIGGER_FIELDS)
N_DEAL_FIELDS = len(DEAL_FIELDS)


# ---- support: loss cover (risk-sharing pools, guarantee insurance)
COVER_REALISED_LOSS = 0  # risk sharing of the loss left after recovery
COVER_DEFAULTED_PRINCIPAL = 1  # risk sharing of the defaulted balance; payers take the recovery
COVER_INSURANCE = 2  # guarantee insurance of the defaulted balance; the insurer takes the recovery


class CoverArrays(NamedTuple):
    """Loss cover as arrays. Dimensions: A assets, V covers, Q payers (of all covers), T periods."""

    a_cover: np.ndarray  # (A,) cover of each asset, -1 none
    cv_kind: np.ndarray  # (V,) COVER_*
    cv_lag_months: np.ndarray  # (V,) lag_months or waiting_months
    cv_payer_ptr: np.ndarray  # (V+1,) payers of cover c: cv_payer_ptr[c] .. cv_payer_ptr[c+1]
    py_obligor: np.ndarray  # (Q,) obligor index
    py_share: np.ndarray  # (Q,)
    py_cap_year: np.ndarray  # (Q,) inf: none
    py_cap_total: np.ndarray  # (Q,) inf: none
    period_year: np.ndarray  # (T,) deal year (0-based, 12 months from closing) of each payment date


class WaterfallTables(NamedTuple):
    """Per-period tables one waterfall run writes (preallocated by the caller)."""

    tranche: np.ndarray  # (T, N, len(TRANCHE_FIELDS))
    fee: np.ndarray  # (T, F, len(FEE_FIELDS))
    account: np.ndarray  # (T, K, len(ACCOUNT_FIELDS))
    support: np.ndarray  # (T, S, len(SUPPORT_FIELDS))
    trigger: np.ndarray  # (T, G, len(TRIGGER_FIELDS))
    deal: np.ndarray  # (T, len(DEAL_FIELDS))
    # ---- hedges
    hedge: np.ndarray  # (T, H, len(HEDGE_FIELDS))


@njit
def allocate_tables(cd: CompiledDeal) -> WaterfallTables:
    """Zeroed output tables for one run of ``cd`` (compiled, so Monte Carlo chunks allocate
    their scratch tables with it too)."""
    t = cd.n_periods
    return WaterfallTables(
        np.zeros((t, cd.tr_balance.shape[0], N_TRANCHE_FIELDS)),
        np.zeros((t, cd.fee_kind.shape[0], N_FEE_FIELDS)),
        np.zeros((t, cd.acc_kind.shape[0], N_ACCOUNT_FIELDS)),
        np.zeros((t, cd.sup_kind.shape[0], N_SUPPORT_FIELDS)),
        np.zeros((t, cd.trg_kind.shape[0], N_TRIGGER_FIELDS)),
        np.zeros((t, N_DEAL_FIELDS)),
        np.zeros((t, cd.hg_notional.shape[0], N_HEDGE_FIELDS)),
    )


# ---- collections: asset cash of one path per pool and collection period (last axis of the
# (P, T, N_COLLECTION_COLUMNS) array the collections kernels fill and the waterfall reads)
C_INTEREST = 0  # interest collected on performing assets
C_SCHED_PRINCIPAL = 1  # scheduled principal collected
C_PREPAYMENT = 2  # prepayments
C_RECOVERY = 3  # recoveries on defaulted assets (after the lag)
C_GUARANTEE = 4  # payments by loan guarantors
C_ROYALTY = 5  # royalty and income-share payments
C_DEFAULT = 6  # principal balance that defaulted in the period
C_BALANCE_START = 7  # performing balance at the start of the period
C_BALANCE_END = 8  # performing balance at the end of the period
C_LOSS = 9  # defaulted balance less what recovery and guarantee will bring
# ---- support
C_RISK_SHARING = 10  # payments by risk-sharing pools (loss_cover)
C_INSURANCE = 11  # payments by guarantee insurers (loss_cover)
# ---- ledgers
C_REALISED_LOSS = 12  # defaulted balance less recovery and guarantee, when the recovery is received
# ---- collateral value
C_COLLATERAL_VALUE = 13  # pledged IP of performing assets and royalty catalogues, at period start
# ---- delinquency (docs/delinquency.md): stocks at the end of the period, and the period's misses
C_DELINQUENT_30 = 14  # balance 30-59 days past due
C_DELINQUENT_60 = 15  # 60-89 days
C_DELINQUENT_90 = 16  # 90 days or more
C_MISSED_INTEREST = 17  # scheduled interest delinquent loans missed in the period
C_MISSED_PRINCIPAL = 18  # scheduled principal delinquent loans missed in the period
C_ARREARS_INTEREST = 19  # interest arrears owed by delinquent loans
C_ARREARS_PRINCIPAL = 20  # principal arrears of delinquent loans (part of their balance)
N_COLLECTION_COLUMNS = 21

COLLECTION_COLUMNS = (
    "interest",
    "scheduled_principal",
    "prepayment",
    "recovery",
    "guarantee",
    "royalty",
    "defaults",
    "balance_start",
    "balance_end",
    "loss",
    # ---- support
    "risk_sharing",
    "insurance",
    # ---- ledgers
    "realised_loss",
    # ---- collateral value
    "collateral_value",
    # ---- delinquency
    "delinquent_30",
    "delinquent_60",
    "delinquent_90",
    "missed_interest",
    "missed_principal",
    "arrears_interest",
    "arrears_principal",
)
