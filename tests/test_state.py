"""State files (the deal on a report date): loading, every check with its location, the
commands, and the state of a deterministic run after period K (docs/surveillance.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ipabs.analytics.state import state_at, write_state
from ipabs.api import run
from ipabs.cli import EXIT_INVALID, EXIT_OK, main
from ipabs.deal.load import load_deal, parse_deal
from ipabs.deal.state import LoadedState, deal_assets, load_state, parse_state
from ipabs.errors import DealError, IpabsError, Issue

ROOT = Path(__file__).resolve().parents[1]
CAOHEJING = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
STATES = ROOT / "scenarios" / "states"
Q2 = STATES / "caohejing_2025q2.yaml"
Q3 = STATES / "caohejing_2025q3.yaml"

LOAN_IDS = [
    ("Caohejing-Xinwei-Semicon-01", "15m"),
    ("Caohejing-Ruikang-MedDevice-02", "14m"),
    ("Caohejing-Zhiyun-Software-03", "13m"),
    ("Caohejing-Guangxin-Photonics-04", "12m"),
    ("Caohejing-Huazhi-AI-05", "11m"),
    ("Caohejing-Xincai-Materials-06", "10m"),
    ("Caohejing-Jingce-Instruments-07", "9m"),
    ("Caohejing-Lvneng-NewEnergy-08", "8.5m"),
    ("Caohejing-Shengwu-BioTech-09", "7.5m"),
]


def _state_text(**replace: str) -> str:
    """A valid state of the Caohejing deal on 2025-09-27 (period 3); ``replace`` maps a line's
    marker (the text before its comment) to the line written instead."""
    lines = [
        "report_date: 2025-09-27",
        "tranches:",
        "  senior: {balance: 90m}",
        "  sub: {balance: 5m}",
        "accounts:",
        "  reserve: 500k",
        "triggers:",
        "  cumulative_default_3pct: {breached: true, active: true}",
        "  senior_interest_shortfall: {breached: false}",
        "loans:",
    ]
    for i, (ident, bal) in enumerate(LOAN_IDS):
        lines.append(f"  - {{id: {ident}, balance: {bal}, status: current}}  # loan{i}")
    out = []
    for line in lines:
        for marker, new in replace.items():
            if line.startswith(marker) or line.endswith(f"# {marker}"):
                line = new
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def caohejing():  # type: ignore[no-untyped-def]
    return load_deal(CAOHEJING)


def _issues(deal, text: str) -> list[Issue]:  # type: ignore[no-untyped-def]
    with pytest.raises(DealError) as exc:
        parse_state(deal, text, "s.yaml")
    return exc.value.issues


def _line_of(text: str, fragment: str) -> int:
    """1-based line of ``text`` holding ``fragment`` (found independently of the loader)."""
    for n, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return n
    raise AssertionError(fragment)


def _one(issues: list[Issue], path: str) -> Issue:
    hits = [i for i in issues if i.path == path]
    assert hits, f"no issue at {path}: {[str(i) for i in issues]}"
    return hits[0]


# --------------------------------------------------------------------------- valid files


def test_valid_state_loads_and_derives_the_period(caohejing) -> None:  # type: ignore[no-untyped-def]
    st = parse_state(caohejing, _state_text(), "s.yaml")
    assert isinstance(st, LoadedState)
    # 2025-09-27 is the deal's third quarterly payment date after closing on 2024-12-27
    assert st.period == 3
    assert st.spec.tranches["senior"].balance == 90e6
    assert st.spec.tranches["senior"].interest_arrears == 0.0
    assert st.spec.triggers["cumulative_default_3pct"].breached
    assert len(st.spec.loans) == 9


def test_report_date_between_payment_dates_follows_the_last_one(caohejing) -> None:  # type: ignore[no-untyped-def]
    st = parse_state(caohejing, _state_text(report_date="report_date: 2025-08-01"), "s.yaml")
    assert st.period == 2  # 2025-03-27 and 2025-06-27 fall before it


def test_shipped_states_validate(caohejing) -> None:  # type: ignore[no-untyped-def]
    q2 = load_state(caohejing, Q2)
    assert q2.period == 2 and q2.tape is None
    assert {loan.status for loan in q2.spec.loans} == {"current"}
    assert sum(loan.balance for loan in q2.spec.loans) == 100e6
    q3 = load_state(caohejing, Q3)
    assert q3.period == 3 and q3.tape is not None and q3.tape.endswith("caohejing_2025q3_loans.csv")
    status = {loan.id: loan for loan in q3.spec.loans}
    assert sorted(s.status for s in status.values()).count("defaulted") == 2
    late = status["Caohejing-Huazhi-AI-05"]
    assert (late.status, late.days_past_due, late.arrears_interest) == ("dpd_31_60", 45, 107250.0)
    assert status["Caohejing-Lvneng-NewEnergy-08"].recovered == 1.2e6
    # blank status cells take the tape's `defaults: {status: current}`
    assert [s.status for s in status.values()].count("current") == 6


def test_every_shipped_state_names_its_deal() -> None:
    files = sorted(STATES.glob("*.yaml"))
    assert files, "no shipped states"
    for f in files:
        assert "ILLUSTRATIVE" in f.read_text(encoding="utf-8"), f"{f.name}: say it is illustrative"


# --------------------------------------------------------------------------- checks, located

LOAN8 = "  - {id: Caohejing-Shengwu-BioTech-09, balance: 7.5m, "

# (name, replacements, marker of the line the issue is on, field path, message fragment)
CHECKS = [
    (
        "unknown tranche",
        {"  senior:": "  senoir: {balance: 90m}"},
        "senoir",
        "tranches.senoir",
        "did you mean 'senior'",
    ),
    ("missing tranche", {"  sub:": "  # no sub"}, "tranches:", "tranches", "'sub'"),
    (
        "tranche above its original",
        {"  sub:": "  sub: {balance: 6m}"},
        "6m",
        "tranches.sub.balance",
        "above the tranche's original balance 5,000,000.00",
    ),
    (
        "write-down without loss allocation",
        {"  sub:": "  sub: {balance: 4m, written_down: 1m}"},
        "written_down",
        "tranches.sub.written_down",
        "no `loss_allocation`",
    ),
    (
        "unknown account",
        {"  reserve:": "  reserv: 500k"},
        "reserv:",
        "accounts.reserv",
        "did you mean 'reserve'",
    ),
    (
        "negative amount",
        {"  reserve:": "  reserve: -1"},
        "reserve: -1",
        "accounts.reserve",
        "must not be negative",
    ),
    (
        "unknown trigger",
        {"  senior_interest_shortfall:": "  senior_interest_shortfal: {breached: false}"},
        "shortfal:",
        "triggers.senior_interest_shortfal",
        "did you mean 'senior_interest_shortfall'",
    ),
    (
        "consecutive breaches of a passing test",
        {
            "  senior_interest_shortfall:": "  senior_interest_shortfall: "
            "{breached: false, consecutive_breaches: 2}"
        },
        "consecutive_breaches: 2",
        "triggers.senior_interest_shortfall.consecutive_breaches",
        "not breached",
    ),
    (
        "fired but not active",
        {"  cumulative_default_3pct:": "  cumulative_default_3pct: {breached: true, active: false}"},
        "active: false",
        "triggers.cumulative_default_3pct.active",
        "it fires at 1",
    ),
    (
        "curable trigger active while its test passes",
        {"  senior_interest_shortfall:": "  senior_interest_shortfall: {breached: false, active: true}"},
        "active: true}",
        "",  # not curable: no issue (checked separately below)
        "",
    ),
    (
        "unknown support",
        {"loans:": "support_used:\n  dpu: {drawn: 0}\nloans:"},
        "dpu:",
        "support_used.dpu",
        "the deal has no support providers",
    ),
    (
        "ledgers on a deal without them",
        {"loans:": "ledgers: {principal_deficiency: 0}\nloans:"},
        "ledgers:",
        "ledgers",
        "no income and principal ledgers",
    ),
    (
        "unknown royalty",
        {"loans:": "royalties:\n  x: {collected: 0}\nloans:"},
        "x: {collected",
        "royalties.x",
        "unknown royalty stream 'x'",
    ),
    (
        "unknown loan",
        {"loan1": "  - {id: Caohejing-Ruikang-MedDevice-2, balance: 14m, status: current}"},
        "MedDevice-2,",
        "loans[1].id",
        "did you mean 'Caohejing-Ruikang-MedDevice-02'",
    ),
    (
        "duplicate loan",
        {"loan1": "  - {id: Caohejing-Xinwei-Semicon-01, balance: 1m, status: current}"},
        "Semicon-01, balance: 1m",
        "loans[1].id",
        "listed twice",
    ),
    (
        "unlisted loans",
        {"loan8": "  # none"},
        "loans:",
        "loans",
        "'Caohejing-Shengwu-BioTech-09'",
    ),
    (
        "loan above its closing balance",
        {"loan0": "  - {id: Caohejing-Xinwei-Semicon-01, balance: 16m, status: current}"},
        "16m",
        "loans[0].balance",
        "above the loan's balance at closing 15,000,000.00",
    ),
    (
        "default date after the report date",
        {"loan8": LOAN8 + "status: defaulted, default_date: 2025-10-01}"},
        "2025-10-01",
        "loans[8].default_date",
        "after the report date 2025-09-27",
    ),
    (
        "default date before closing",
        {"loan8": LOAN8 + "status: defaulted, default_date: 2024-12-01}"},
        "2024-12-01",
        "loans[8].default_date",
        "before the deal's closing date 2024-12-27",
    ),
    (
        "defaulted without a default date",
        {"loan8": LOAN8 + "status: defaulted}"},
        "status: defaulted}",
        "loans[8]",
        "default_date is required",
    ),
    (
        "default date on a current loan",
        {"loan8": LOAN8 + "status: current, default_date: 2025-05-01}"},
        "2025-05-01",
        "loans[8].default_date",
        "status is 'current'",
    ),
    (
        "recovered above the defaulted balance",
        {"loan8": LOAN8 + "status: defaulted, default_date: 2025-05-01, recovered: 8m}"},
        "recovered: 8m",
        "loans[8].recovered",
        "above the defaulted balance 7,500,000.00",
    ),
    (
        "recovered on a current loan",
        {"loan8": LOAN8 + "status: current, recovered: 1m}"},
        "recovered: 1m",
        "loans[8].recovered",
        "only defaulted loans recover",
    ),
    (
        "status against days past due",
        {"loan8": LOAN8 + "status: dpd_31_60, days_past_due: 20}"},
        "days_past_due: 20",
        "loans[8].days_past_due",
        "20 days is 'dpd_1_30'",
    ),
    (
        "repaid with a balance",
        {"loan8": LOAN8 + "status: repaid}"},
        "status: repaid",
        "loans[8].balance",
        "repaid loan must be 0",
    ),
    (
        "unknown status",
        {"loan8": LOAN8 + "status: dpd_30_60}"},
        "dpd_30_60",
        "loans[8].status",
        "did you mean 'dpd_31_60'",
    ),
    (
        "report date before closing",
        {"report_date": "report_date: 2024-12-01"},
        "report_date",
        "report_date",
        "before the deal's closing date",
    ),
    (
        "report date after legal final",
        {"report_date": "report_date: 2027-01-05"},
        "report_date",
        "report_date",
        "after the deal's legal final date 2026-12-27",
    ),
    (
        "period against the report date",
        {"report_date": "report_date: 2025-09-27\nperiod: 4"},
        "period: 4",
        "period",
        "write `period: 3`",
    ),
    (
        "misspelt section",
        {"accounts:": "acounts:"},
        "acounts:",
        "acounts",
        "did you mean 'accounts'",
    ),
]


@pytest.mark.parametrize(
    ("replace", "marker", "path", "fragment"), [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS]
)
def test_each_check_fires_at_its_place(caohejing, replace, marker, path, fragment) -> None:  # type: ignore[no-untyped-def]
    text = _state_text(**replace)
    if not path:  # a case that must load
        parse_state(caohejing, text, "s.yaml")
        return
    issue = _one(_issues(caohejing, text), path)
    assert issue.file == "s.yaml"
    assert issue.line == _line_of(text, marker), str(issue)
    assert fragment in issue.message + " " + issue.hint, str(issue)
    assert str(issue).startswith(f"s.yaml:{issue.line}:{issue.column}: {path}")


def test_unlisted_loans_may_be_declared_repaid(caohejing) -> None:  # type: ignore[no-untyped-def]
    text = _state_text(loan8="  # none") + "unlisted_loans: repaid\n"
    assert len(parse_state(caohejing, text, "s.yaml").spec.loans) == 8


def test_a_state_must_be_a_mapping(caohejing) -> None:  # type: ignore[no-untyped-def]
    [issue] = _issues(caohejing, "- 1\n")
    assert (issue.line, "must be a mapping") == (1, "must be a mapping")


SUPPORTED = """\
deal: {name: t, closing_date: 2024-01-15, first_payment_date: 2024-04-15, payment_frequency: quarterly,
       legal_final_date: 2026-01-15}
obligors: [{name: Provider}]
pools: [{name: p, loans: [{obligor: A, balance: 10m, rate: 5%, term_months: 12}]}]
tranches: [{name: senior, balance: 10m, coupon: 3%}]
support:
  - {name: dpu, kind: deficiency_payment, provider: Provider, cap_total: 1m}
  - {name: lf, kind: liquidity_facility, provider: Provider, limit: 500k}
waterfalls:
  normal:
    - pay_interest: senior
    - draw: {from: dpu, covers: [senior.interest]}
    - draw: {from: lf, covers: [senior.interest]}
    - repay_liquidity: lf
    - pay_principal: senior
"""


def test_support_used_above_its_cap() -> None:
    deal = parse_deal(SUPPORTED, "d.yaml")
    text = (
        "report_date: 2024-07-15\ntranches: {senior: {balance: 9m}}\n"
        "support_used:\n  dpu: {drawn: 1.5m}\n  lf: {drawn: 1m, outstanding: 600k}\n"
        "loans: [{id: A, balance: 9m, status: current}]\n"
    )
    issues = _issues(deal, text)
    assert "total cap 1,000,000.00" in _one(issues, "support_used.dpu.drawn").message
    assert _one(issues, "support_used.dpu.drawn").line == 4
    assert "limit 500,000.00" in _one(issues, "support_used.lf.outstanding").message
    ok = text.replace("1.5m", "1m").replace("600k", "400k")
    assert parse_state(deal, ok, "s.yaml").spec.support_used["lf"].outstanding == 400e3


# --------------------------------------------------------------------------- loan tapes


def _tape_state(tmp_path: Path, csv_text: str, extra: str = "") -> Path:
    (tmp_path / "loans.csv").write_text(csv_text, encoding="utf-8")
    head = _state_text().split("loans:")[0]
    f = tmp_path / "state.yaml"
    f.write_text(head + "loans:\n  tape:\n    path: loans.csv\n" + extra, encoding="utf-8")
    return f


def _csv(rows: dict[int, str] | None = None, header: str = "id,balance,status,days_past_due") -> str:
    lines = [header] + [f"{ident},{bal},current," for ident, bal in LOAN_IDS]
    for i, row in (rows or {}).items():
        lines[i + 1] = row
    return "\n".join(lines) + "\n"


def test_tape_cell_problem_is_located_at_row_and_column(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = _tape_state(tmp_path, _csv({4: "Caohejing-Huazhi-AI-05,11m,dpd_31_60,5"}))
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    [issue] = exc.value.issues
    assert issue.file.endswith("loans.csv")
    assert (issue.line, issue.column) == (6, 4)  # the header is row 1; days_past_due is column 4
    assert issue.path == "loans[4].days_past_due" and "5 days is 'dpd_1_30'" in issue.message


def test_tape_cross_checks_are_located_in_the_tape(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = _tape_state(tmp_path, _csv({2: "Caohejing-Zhiyun-Software3,13m,current,"}))
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    issue = _one(exc.value.issues, "loans[2].id")
    assert issue.file.endswith("loans.csv") and (issue.line, issue.column) == (4, 1)
    assert "did you mean 'Caohejing-Zhiyun-Software-03'" in issue.hint


def test_tape_defaults_and_their_problems_are_located_in_the_state_file(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv_text = "\n".join(["id,balance"] + [f"{i},{b}" for i, b in LOAN_IDS]) + "\n"
    f = _tape_state(tmp_path, csv_text, "    defaults: {status: current}\n")
    assert {loan.status for loan in load_state(caohejing, f).spec.loans} == {"current"}
    f = _tape_state(tmp_path, csv_text, "    defaults: {status: curent}\n")
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    issue = exc.value.issues[0]
    assert issue.file == str(f) and issue.line == _line_of(f.read_text(encoding="utf-8"), "curent")
    assert issue.path == "loans.tape.defaults.status" and issue.message.startswith("row 2:")


def test_tape_settings_are_checked(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = _tape_state(tmp_path, _csv(), "    columns: {balanse: 余额, status: 状态}\n")
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    text = f.read_text(encoding="utf-8")
    assert "did you mean 'balance'" in _one(exc.value.issues, "loans.tape.columns.balanse").hint
    missing = _one(exc.value.issues, "loans.tape.columns.status")
    assert missing.line == _line_of(text, "状态") and "'状态' is not in the tape" in missing.message
    (tmp_path / "loans.csv").unlink()
    f = _tape_state(tmp_path, _csv())
    (tmp_path / "loans.csv").unlink()
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    assert _one(exc.value.issues, "loans.tape.path").message.startswith("tape not found")


def test_excel_tape(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["贷款编号", "本金余额", "状态", "违约日期"])
    for ident, bal in LOAN_IDS[:-1]:
        ws.append([ident, float(bal[:-1]) * 1e6, "current", None])
    ws.append([LOAN_IDS[-1][0], 7.5e6, "defaulted", __import__("datetime").datetime(2025, 9, 1)])
    wb.save(tmp_path / "loans.xlsx")
    head = _state_text().split("loans:")[0]
    f = tmp_path / "state.yaml"
    f.write_text(
        head + "loans:\n  tape:\n    path: loans.xlsx\n"
        "    columns: {id: 贷款编号, balance: 本金余额, status: 状态, default_date: 违约日期}\n",
        encoding="utf-8",
    )
    loans = load_state(caohejing, f).spec.loans
    assert loans[-1].status == "defaulted" and str(loans[-1].default_date) == "2025-09-01"
    assert loans[0].balance == 15e6


# --------------------------------------------------------------------------- the commands


def test_check_state_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-state", str(CAOHEJING), "--state", str(Q3)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "report date 2025-09-27, period 3" in out
    assert "dpd_31_60" in out and "16,000,000.00" in out  # two defaulted loans: 8.5m + 7.5m
    assert "recovered 1,200,000.00" in out
    assert "triggers breached: cumulative_default_3pct" in out


def test_check_state_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-state", str(CAOHEJING), "--state", str(Q3), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    by_status = {r["status"]: r for r in doc["pool"]["by_status"]}
    assert (by_status["defaulted"]["count"], by_status["defaulted"]["balance"]) == (2, 16e6)
    assert by_status["current"]["count"] == 6 and by_status["dpd_31_60"]["count"] == 1
    assert doc["pool"]["performing_balance"] == 84e6 and doc["period"] == 3


def test_check_state_bad_input_is_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = _state_text(loan0="  - {id: Caohejing-Xinwei-Semicon-01, balance: 16m, status: current}")
    bad.write_text(text, encoding="utf-8")
    assert main(["check-state", str(CAOHEJING), "--state", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:{_line_of(text, '16m')}:" in err and "loans[0].balance" in err
    assert "Traceback" not in err
    assert main(["check-state", str(CAOHEJING), "--state", str(tmp_path / "none.yaml")]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "file not found" in err and "Traceback" not in err


# --------------------------------------------------------------------------- state after period K

BRIDGE = """\
deal:
  name: Surveillance bridge test deal
  closing_date: 2024-01-15
  first_payment_date: 2024-04-15
  payment_frequency: quarterly
  legal_final_date: 2027-01-15
obligors: [{name: Provider}]
pools:
  - name: park
    loans:
      - {obligor: AlphaTech, balance: 6m, rate: 5%, term_months: 24, amortisation: equal_principal}
      - {obligor: BetaSoft, balance: 5m, rate: 6%, term_months: 24, pledged_ip: {appraised_value: 12m}}
      - {obligor: GammaBio, balance: 2m, rate: 6%, term_months: 30, amortisation: annuity}
      - {obligor: GammaBio, balance: 1m, rate: 6%, term_months: 30, amortisation: annuity}
      - {id: D-7, obligor: DeltaChip, balance: 3m, rate: 5.5%, term_months: 18, amortisation: bullet}
    leases:
      - {obligor: EpsilonFilm, balance: 2m, rate: 6.5%, term_months: 24}
    royalties:
      - {obligor: ZetaPharma, kind: running, rate: 5%, sales: {initial: 20m, growth: 0%}}
scenarios:
  named:
    defaults: {obligors: {BetaSoft: 3, DeltaChip: 4}}
    recovery: {rate: 40%, lag_months: 3}
  cdr:
    defaults: {cdr: 2%}
tranches:
  - {name: senior, balance: 15m, coupon: 3%}
  - {name: sub, balance: 4m}
fees: [{name: trustee, annual_amount: 40k}]
accounts: [{name: reserve, initial: 100k, target: 100k}]
support: [{name: dpu, kind: deficiency_payment, provider: Provider, cap_total: 2m}]
triggers:
  - name: cdr_trigger
    kind: cumulative_default_rate
    threshold: 5%
    consecutive: 2
    effect: {sequential: true}
ledgers: {recoveries: principal}
loss_allocation: {method: write_down}
waterfalls:
  normal:
    income:
      - pay_fee: trustee
      - pay_interest: senior
      - draw: {from: dpu, covers: [senior.interest]}
      - fund_account: reserve
      - to_principal: deficiency
      - pay_residual: sub
    principal:
      - pay_fee: trustee
      - pay_interest: senior
      - pay_principal: senior
      - pay_principal: sub
      - pay_residual: sub
"""


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("bridge") / "deal.yaml"
    f.write_text(BRIDGE, encoding="utf-8")
    return f


@pytest.mark.parametrize("period", [2, 5])
def test_state_at_matches_the_run_tables(bridge: Path, period: int) -> None:
    deal = load_deal(bridge)
    state = state_at(deal, period, "named")
    result = run(deal, "named")
    row = result.periods[result.periods["period"] == period].iloc[0]
    assert state.report_date == row["payment_date"].date() and state.period == period
    flows = result.tranche_flows[result.tranche_flows["period"] == period].set_index("tranche")
    for name, t in state.tranches.items():
        assert t.balance == pytest.approx(flows.loc[name, "balance_end"], abs=1e-6)
        assert t.interest_arrears == pytest.approx(flows.loc[name, "interest_shortfall"], abs=1e-6)
        assert t.written_down == pytest.approx(flows.loc[name, "written_down"], abs=1e-6)
    assert state.accounts["reserve"] == pytest.approx(row["reserve.balance_end"], abs=1e-6)
    assert state.support_used["dpu"].drawn == pytest.approx(row["dpu.cumulative_draw"], abs=1e-6)
    assert state.ledgers is not None
    assert state.ledgers.principal_deficiency == pytest.approx(row["deal.principal_deficiency"], abs=1e-6)
    breached = result.periods["cdr_trigger.breached"].to_numpy()[:period] > 0
    trig = state.triggers["cdr_trigger"]
    assert trig.breached == breached[-1] and trig.active == (row["cdr_trigger.active"] > 0)
    run_length = len(breached) - (np.flatnonzero(~breached)[-1] + 1 if (~breached).any() else 0)
    assert trig.consecutive_breaches == run_length

    # the loans: performing balances add up to the run's pool balance, defaults to its defaults
    loans = {loan.id: loan for loan in state.loans}
    assert set(loans) == {"AlphaTech", "BetaSoft", "GammaBio#1", "GammaBio#2", "D-7", "EpsilonFilm"}
    performing = sum(loan.balance for loan in state.loans if loan.status == "current")
    assert performing == pytest.approx(row["deal.pool_balance"], rel=1e-12, abs=1e-6)
    coll = result.collateral[result.collateral["period"] <= period]
    defaulted = sum(loan.balance for loan in state.loans if loan.status == "defaulted")
    assert defaulted == pytest.approx(coll["defaults"].sum(), abs=1e-6)
    assert sum(loan.recovered for loan in state.loans) == pytest.approx(coll["recovery"].sum(), abs=1e-6)
    assert state.royalties["ZetaPharma"].collected == pytest.approx(coll["royalty"].sum(), abs=1e-6)
    dates = list(result.periods["payment_date"].dt.date)
    if period >= 3:  # BetaSoft defaults in period 3, its whole closing balance
        beta = loans["BetaSoft"]
        assert (beta.status, beta.balance, beta.default_date) == ("defaulted", 5e6, dates[2])
    else:
        assert loans["BetaSoft"].status == "current" and loans["BetaSoft"].balance == 5e6


def test_state_at_round_trips_through_the_files(bridge: Path, tmp_path: Path) -> None:
    deal = load_deal(bridge)
    state = state_at(deal, 5, "named")
    for tape in (False, True):
        out = tmp_path / f"s{int(tape)}.yaml"
        files = write_state(state, out, tape=tape)
        assert files[-1] == out and (len(files) == 2) == tape
        loaded = load_state(deal, out)
        assert loaded.spec == state
        assert (loaded.tape is not None) == tape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.yaml", "s1.loans.csv", "s1.yaml"]


def test_state_at_refuses_fractional_defaults(bridge: Path) -> None:
    with pytest.raises(IpabsError, match="a fraction of loan 'AlphaTech' defaults"):
        state_at(load_deal(bridge), 2, "cdr")
    with pytest.raises(IpabsError, match="outside the deal's periods 1 to 12"):
        state_at(load_deal(bridge), 13, "named")


def test_state_command_writes_a_valid_state(
    bridge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.yaml"
    args = ["state", str(bridge), "--period", "4", "--scenario", "named", "--out", str(out), "--tape", "yes"]
    assert main(args) == EXIT_OK
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "s.loans.csv").is_file()
    assert main(["check-state", str(bridge), "--state", str(out)]) == EXIT_OK
    assert "period 4" in capsys.readouterr().out
    assert main([*args[:5], "cdr", "--out", str(tmp_path / "c.yaml")]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert "a fraction of loan" in err and "Traceback" not in err
    assert not (tmp_path / "c.yaml").exists()


def test_shipped_quiet_state_is_the_base_run(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The 2025Q2 example quotes the base scenario's balances to the cent."""
    shipped = load_state(caohejing, Q2).spec
    made = state_at(caohejing, 2, "base")
    for name, t in shipped.tranches.items():
        assert t.balance == pytest.approx(made.tranches[name].balance, abs=0.005)
    assert shipped.accounts["reserve"] == pytest.approx(made.accounts["reserve"], abs=0.005)
    assert [(x.id, x.balance, x.status) for x in shipped.loans] == [
        (x.id, x.balance, x.status) for x in made.loans
    ]
    copy = tmp_path / "states"
    shutil.copytree(STATES, copy)
    assert load_state(caohejing, copy / Q3.name).spec == load_state(caohejing, Q3).spec


def test_curable_trigger_in_effect_while_its_test_passes(bridge: Path) -> None:
    deal = load_deal(bridge)
    text = (
        "report_date: 2024-07-15\ntranches: {senior: {balance: 14m}, sub: {balance: 4m}}\n"
        "accounts: {reserve: 100k}\nledgers: {principal_deficiency: 0}\n"
        "triggers:\n  cdr_trigger: {breached: false, active: true}\n"
        "support_used: {dpu: {drawn: 0}}\nroyalties: {ZetaPharma: {collected: 250k}}\n"
        "unlisted_loans: repaid\n"
    )
    issue = _one(_issues(deal, text), "triggers.cdr_trigger.active")
    assert issue.line == 6 and "curable" in issue.message
    # breached once in a row: `consecutive: 2` has not fired, so not in effect
    once = "{breached: true, active: false, consecutive_breaches: 1}"
    ok = text.replace("{breached: false, active: true}", once)
    assert parse_state(deal, ok, "s.yaml").spec.triggers["cdr_trigger"].consecutive_breaches == 1
    fired = ok.replace("consecutive_breaches: 1", "consecutive_breaches: 2")
    assert "it fires at 2" in _one(_issues(deal, fired), "triggers.cdr_trigger.active").message
    no_ledger = text.replace("ledgers: {principal_deficiency: 0}\n", "")
    assert "needs `ledgers`" in _issues(deal, no_ledger)[0].message


def test_documented_summary_is_what_check_state_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    doc = (ROOT / "docs" / "surveillance.md").read_text(encoding="utf-8")
    found = re.search(r"```bash\n(ipabs check-state [^\n]*)\n```\n\n```text\n(.*?)```", doc, re.S)
    assert found is not None
    monkeypatch.chdir(ROOT)
    assert main(found.group(1).split()[1:]) == EXIT_OK
    assert capsys.readouterr().out == found.group(2)
    # the shipped example the page quotes is the file itself
    shipped = Q3.read_text(encoding="utf-8")
    for line in (
        "report_date: 2025-09-27",
        "senior: {balance: 93350000, interest_arrears: 0}",
        "id: 贷款编号",
    ):
        assert line in shipped and line in doc


def test_tape_problems_are_capped(caohejing, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ipabs.deal.tape import MAX_CELL_ISSUES

    rows = [f"X{i},1m,current," for i in range(MAX_CELL_ISSUES + 5)]
    f = _tape_state(tmp_path, "id,balance,status,days_past_due\n" + "\n".join(rows) + "\n")
    with pytest.raises(DealError) as exc:
        load_state(caohejing, f)
    in_tape = [i for i in exc.value.issues if i.file.endswith("loans.csv")]
    assert len(in_tape) == MAX_CELL_ISSUES + 1
    # 25 unknown ids, and the deal's nine loans missing (reported at the tape's header row)
    assert in_tape[-1].message == "... and 6 more problems in this tape"
    assert [i.line for i in in_tape[:3]] == [1, 2, 3] and "missing from the state" in in_tape[0].message
    assert "unknown loan 'X0'" in in_tape[1].message


def test_loan_and_royalty_ids_have_their_own_namespaces() -> None:
    from ipabs.deal.state import deal_assets, deal_royalty_ids

    text = SUPPORTED.replace(
        "pools: [{name: p, loans: [{obligor: A, balance: 10m, rate: 5%, term_months: 12}]}]",
        "pools:\n  - name: p\n    loans: [{obligor: A, balance: 10m, rate: 5%, term_months: 12}]\n"
        "    royalties: [{obligor: A, kind: fixed, instalments: [1m, 1m], balance: 1.9m}]",
    )
    deal = parse_deal(text, "d.yaml")
    assert [(a.id, a.kind) for a in deal_assets(deal)] == [("A", "loan"), ("A", "licence")]
    assert deal_royalty_ids(deal) == ["A"]
    # a fixed licence pays its instalments (1m a quarter from closing): collected by period 1
    state = state_at(deal, 1)
    assert state.royalties["A"].collected == pytest.approx(1e6, abs=1e-6)
    assert [loan.id for loan in state.loans] == ["A"]


def test_interrupted_write_leaves_nothing(
    bridge: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipabs.analytics.state as module

    state = state_at(load_deal(bridge), 5, "named")

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(module.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_state(state, tmp_path / "s.yaml", tape=True)
    assert list(tmp_path.iterdir()) == []  # neither file, nor a temporary one


def test_documented_state_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    doc = (ROOT / "docs" / "surveillance.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(ipabs state scenarios/[^\n]*\nipabs check-state [^\n]*)\n```", doc)
    assert block is not None
    monkeypatch.chdir(ROOT)
    for command in block.group(1).splitlines():
        argv = [str(tmp_path / a) if a == "q2_state.yaml" else a for a in command.split()[1:]]
        assert main(argv) == EXIT_OK, command
    assert "period 2" in capsys.readouterr().out


def test_a_numeric_loan_id_is_text(caohejing) -> None:  # type: ignore[no-untyped-def]
    text = _state_text(loan0="  - {id: 1001, balance: 15m, status: current}")
    issue = _one(_issues(caohejing, text), "loans[0].id")
    assert "unknown loan '1001'" in issue.message  # read, then not found among the deal's ids


def test_a_lease_may_have_grown(tmp_path: Path) -> None:
    """A lease whose rents are below its interest accretes (scenarios/ip_finance_lease.yaml):
    its state is valid although its balance is above the balance at closing."""
    deal = load_deal(ROOT / "scenarios" / "ip_finance_lease.yaml")
    state = state_at(deal, 1, "base")
    closing = {a.id: a.balance for a in deal_assets(deal)}
    assert any(loan.balance > closing[loan.id] + 1.0 for loan in state.loans)
    write_state(state, tmp_path / "s.yaml")
    assert load_state(deal, tmp_path / "s.yaml").spec == state
