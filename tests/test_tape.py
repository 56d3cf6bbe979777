"""Loan tapes: reading CSV and Excel, column mapping, defaults, and every located error."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipabs.deal.schema import Deal
from ipabs.deal.source import parse_yaml
from ipabs.deal.tape import MAX_CELL_ISSUES, TAPE_FIELDS, LoanTape, read_tapes
from ipabs.errors import DealError, Issue

DATA = Path(__file__).parent / "data"

HEADER = """\
deal: {name: T, closing_date: 2025-01-15, first_payment_date: 2025-04-15,
       payment_frequency: quarterly, legal_final_date: 2027-01-15}
indices: {LPR1Y: 3.1%}
obligors: [{name: Gamma-Guarantee}, {name: 浦东担保}]
pools:
"""
FOOTER = """\
tranches: [{name: senior, balance: 1000}]
waterfalls: {normal: [{pay_interest: senior}, {pay_principal: senior}]}
"""
CN_COLUMNS = (
    "{id: 贷款编号, obligor: 借款人, balance: 贷款余额, rate: 利率, maturity_date: 到期日, "
    "amortisation: 还款方式, guarantor: 担保人, industry: 行业}"
)


def deal_text(*tapes: str) -> str:
    """A minimal deal with one pool per tape (each a YAML flow mapping)."""
    pools = "".join(f"  - name: p{i}\n    tape: {t}\n" for i, t in enumerate(tapes))
    return HEADER + pools + FOOTER


def load(base: Path, *tapes: str) -> dict[str, LoanTape]:
    data, smap = parse_yaml(deal_text(*tapes), "deal.yaml")
    return read_tapes(Deal.model_validate(data), smap, base)


def errors(base: Path, *tapes: str) -> list[Issue]:
    with pytest.raises(DealError) as info:
        load(base, *tapes)
    return info.value.issues


def position(text: str, needle: str, line_of: str) -> tuple[int, int]:
    """1-based (line, column) of ``needle`` on the first line containing ``line_of``."""
    for n, line in enumerate(text.splitlines(), 1):
        if line_of in line:
            return n, line.index(needle) + 1
    raise AssertionError(line_of)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


BASIC = "obligor,balance,rate,maturity_date"


# --------------------------------------------------------------------------- reading


def test_csv_with_default_column_names() -> None:
    tape = load(DATA, "{path: tape_basic.csv}")["p0"]
    f = tape.frame
    assert list(f.columns) == list(TAPE_FIELDS)
    assert len(tape) == 3 and tape.pool == "p0" and tape.file.endswith("tape_basic.csv")
    assert f["id"].tolist() == ["L1", "L2", "L3"]
    assert f["balance"].dtype == np.float64
    assert tape.total_balance() == 10_000_000.0
    assert tape.obligor_names() == ["Alpha-Bio", "Beta-Soft"]
    # fixed and floating
    assert f["rate"].iloc[0] == 0.045 and np.isnan(f["rate"].iloc[1])
    assert f["rate"].iloc[2] == pytest.approx(0.042)
    assert f["index"].tolist() == ["", "LPR1Y", ""]
    assert f["spread"].tolist() == [0.0, 0.015, 0.0]
    assert f["rate_floor"].isna().all()
    # maturity xor term
    assert f["maturity_date"].dtype == "datetime64[s]"
    assert f["maturity_date"].iloc[0] == pd.Timestamp("2026-06-30") and pd.isna(f["maturity_date"].iloc[1])
    assert str(f["term_months"].dtype) == "Int64"
    assert pd.isna(f["term_months"].iloc[0]) and f["term_months"].iloc[1] == 18
    # choices and built-in defaults
    assert f["amortisation"].tolist() == ["bullet", "annuity", "interest_only_then_bullet"]
    assert f["payment_frequency"].tolist() == ["quarterly", "monthly", "quarterly"]
    assert (f["day_count"] == "ACT/365").all() and (f["ip_kind"] == "patent").all()
    assert f["interest_only_months"].dtype == np.int64 and (f["interest_only_months"] == 0).all()
    # guarantee share: 1 with a guarantor, 0 without
    assert f["guarantor"].tolist() == ["", "Gamma-Guarantee", ""]
    assert f["guarantee_share"].tolist() == [0.0, 1.0, 0.0]
    assert f["region"].tolist() == ["Caohejing", "Zhangjiang", ""]
    assert f["pd"].iloc[0] == 0.02 and np.isnan(f["pd"].iloc[1])
    assert f["appraised_value"].isna().all()


def test_chinese_headers_bom_separators_and_date_styles() -> None:
    tape = load(DATA, f"{{path: tape_cn.csv, columns: {CN_COLUMNS}}}")["p0"]
    f = tape.frame
    assert f["balance"].tolist() == [1_200_000.5, 800_000.0, 500_000.0]
    assert f["rate"].tolist() == pytest.approx([0.0385, 0.041, 0.04])
    assert [d.date() for d in f["maturity_date"]] == [
        dt.date(2026, 6, 30),
        dt.date(2026, 12, 31),
        dt.date(2026, 11, 15),
    ]
    assert f["amortisation"].tolist() == ["bullet", "equal_principal", "annuity"]
    assert tape.obligor_names() == ["上海甲科技有限公司", "上海乙软件有限公司"]
    assert f["guarantee_share"].tolist() == [0.0, 1.0, 0.0]
    assert f["industry"].iloc[1] == "软件"


def test_defaults_fill_missing_columns_and_blank_cells(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [
            "obligor,balance,rate,payment_frequency,guarantor",
            "A,100,0.05,,Gamma-Guarantee",
            "B,200,0.06,monthly,",
        ],
    )
    tapes = load(
        tmp_path,
        "{path: t.csv, defaults: {term_months: 12, payment_frequency: semi-annual, "
        "guarantee_share: 50%, day_count: act/360, ip_kind: trademark}}",
    )
    f = tapes["p0"].frame
    assert f["term_months"].tolist() == [12, 12]
    assert f["payment_frequency"].tolist() == ["semi-annual", "monthly"]
    assert f["day_count"].tolist() == ["ACT/360", "ACT/360"]
    assert f["ip_kind"].tolist() == ["trademark", "trademark"]
    # the share default applies only where a guarantor is named
    assert f["guarantee_share"].tolist() == [0.5, 0.0]
    # ids default to the obligor name
    assert f["id"].tolist() == ["A", "B"]


def test_default_pairs_fill_only_rows_without_the_other(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        ["obligor,balance,rate,index,maturity_date", "A,100,0.05,,2026-01-31", "B,200,,LPR1Y,"],
    )
    f = load(tmp_path, "{path: t.csv, defaults: {term_months: 12, spread: 1%}}")["p0"].frame
    assert f["term_months"].isna().tolist() == [True, False]
    assert f["term_months"].iloc[1] == 12
    assert f["spread"].tolist() == [0.0, 0.01]


def test_repeated_obligor_gets_numbered_ids(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv", [BASIC, "A,1,0.05,2026-01-31", "A,2,0.05,2026-01-31", "B,3,0.05,2026-01-31"]
    )
    assert load(tmp_path, "{path: t.csv}")["p0"].frame["id"].tolist() == ["A#1", "A#2", "B"]


def test_xlsx_with_sheet(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "借款人": ["甲", "乙", "丙"],
            "贷款余额": [1_000_000, "2,500,000", 750_000.0],
            "利率": [0.04, "3.5%", 0.05],
            "到期日": [dt.datetime(2026, 6, 30), "2026-09-30", dt.date(2026, 3, 31)],
            "id": [1001, 1002, 1003],
        }
    )
    with pd.ExcelWriter(tmp_path / "t.xlsx", engine="openpyxl") as writer:
        pd.DataFrame({"x": [1]}).to_excel(writer, sheet_name="Notes", index=False)
        frame.to_excel(writer, sheet_name="Loans", index=False)
    cols = "{obligor: 借款人, balance: 贷款余额, rate: 利率, maturity_date: 到期日}"
    tape = load(tmp_path, f"{{path: t.xlsx, sheet: Loans, columns: {cols}}}")["p0"]
    f = tape.frame
    assert f["id"].tolist() == ["1001", "1002", "1003"]
    assert f["balance"].tolist() == [1_000_000.0, 2_500_000.0, 750_000.0]
    assert f["rate"].tolist() == pytest.approx([0.04, 0.035, 0.05])
    assert [d.date() for d in f["maturity_date"]] == [
        dt.date(2026, 6, 30),
        dt.date(2026, 9, 30),
        dt.date(2026, 3, 31),
    ]
    assert tape.total_balance() == 4_250_000.0


def test_xlsx_bad_cell_and_missing_sheet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"obligor": ["A", "B"], "balance": [1.0, "lots"], "rate": [0.04, 0.04]})
    frame["term_months"] = 12
    frame.to_excel(tmp_path / "t.xlsx", sheet_name="Loans", index=False, engine="openpyxl")
    [issue] = errors(tmp_path, "{path: t.xlsx}")
    assert (issue.line, issue.column) == (3, 2)
    assert "cell B3" in issue.message and "'lots'" in issue.message
    text = deal_text("{path: t.xlsx, sheet: Laons}")
    [issue] = errors(tmp_path, "{path: t.xlsx, sheet: Laons}")
    assert (issue.line, issue.column) == position(text, "Laons", "sheet:")
    assert "no sheet 'Laons'" in issue.message and "did you mean 'Loans'" in issue.hint


def test_loaded_through_parse_deal(tmp_path: Path) -> None:
    from ipabs.deal.load import parse_deal

    shutil.copy(DATA / "tape_basic.csv", tmp_path / "tape.csv")
    deal = parse_deal(deal_text("{path: tape.csv}"), "deal.yaml", base_dir=tmp_path)
    assert deal.tapes["p0"].total_balance() == 10_000_000.0


def test_issues_of_all_tapes_are_collected(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv", [BASIC, "A,x,0.05,2026-01-31"])
    issues = errors(tmp_path, "{path: a.csv}", "{path: missing.csv}")
    assert {(i.file, i.path) for i in issues} == {
        ("deal.yaml", "pools[1].tape.path"),
        (str(tmp_path / "a.csv"), ""),
    }


# --------------------------------------------------------------------------- file errors


def test_missing_file_located_at_path(tmp_path: Path) -> None:
    text = deal_text("{path: nope.csv}")
    [issue] = errors(tmp_path, "{path: nope.csv}")
    assert issue.file == "deal.yaml" and issue.path == "pools[0].tape.path"
    assert (issue.line, issue.column) == position(text, "nope.csv", "tape:")
    assert "not found" in issue.message and "relative to the deal file" in issue.hint


def test_unsupported_extension(tmp_path: Path) -> None:
    (tmp_path / "t.xls").write_bytes(b"\xd0\xcf")
    [issue] = errors(tmp_path, "{path: t.xls}")
    assert issue.path == "pools[0].tape.path" and "'.xls'" in issue.message
    assert ".xlsx" in issue.hint


def test_empty_tape_and_empty_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "h.csv", [BASIC])
    [issue] = errors(tmp_path, "{path: h.csv}")
    assert "has no loans" in issue.message and issue.path == "pools[0].tape.path"
    (tmp_path / "e.csv").write_bytes(b"")
    [issue] = errors(tmp_path, "{path: e.csv}")
    assert "empty" in issue.message and issue.path == "pools[0].tape.path"


def test_not_utf8_and_damaged_excel(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_bytes((BASIC + "\n甲,1,0.05,2026-01-31\n").encode("gbk"))
    [issue] = errors(tmp_path, "{path: g.csv}")
    assert "not UTF-8" in issue.message and "line 2" in issue.message and "UTF-8" in issue.hint
    (tmp_path / "d.xlsx").write_bytes(b"not a zip")
    [issue] = errors(tmp_path, "{path: d.xlsx}")
    assert "cannot read tape" in issue.message and issue.path == "pools[0].tape.path"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(("\ufeff" + BASIC + "\nA,1,0.05,2026-01-31\n").encode("utf-8"))
    assert load(tmp_path, "{path: b.csv}")["p0"].obligor_names() == ["A"]


# --------------------------------------------------------------------------- setting errors


def test_unknown_field_in_columns_with_suggestion(tmp_path: Path) -> None:
    shutil.copy(DATA / "tape_basic.csv", tmp_path / "t.csv")
    tape = "{path: t.csv, columns: {balanse: balance}, defaults: {ratee: 0.05}}"
    text = deal_text(tape)
    issues = errors(tmp_path, tape)
    by_path = {i.path: i for i in issues}
    col = by_path["pools[0].tape.columns.balanse"]
    assert col.message == "unknown loan field 'balanse'" and col.hint == "did you mean 'balance'?"
    assert (col.line, col.column) == position(text, "balanse", "tape:")
    assert by_path["pools[0].tape.defaults.ratee"].hint == "did you mean 'rate'?"


def test_missing_mapped_column_lists_the_files_columns(tmp_path: Path) -> None:
    shutil.copy(DATA / "tape_cn.csv", tmp_path / "t.csv")
    tape = "{path: t.csv, columns: {obligor: 借款人, balance: 余额, rate: 利率, maturity_date: 到期日}}"
    text = deal_text(tape)
    [issue] = errors(tmp_path, tape)
    assert issue.path == "pools[0].tape.columns.balance"
    assert (issue.line, issue.column) == position(text, "余额", "tape:")
    assert "no column '余额'" in issue.message
    assert "'贷款余额'" in issue.hint and "'借款人'" in issue.hint


def test_required_field_without_column(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", ["obligor,Balance,rate,maturity_date", "A,1,0.05,2026-01-31"])
    [issue] = errors(tmp_path, "{path: t.csv}")
    assert issue.path == "pools[0].tape.path"
    assert "no column for 'balance'" in issue.message
    assert "did you mean 'Balance'" in issue.hint and "defaults" in issue.hint
    write_csv(tmp_path / "u.csv", ["obligor,balance,rate", "A,1,0.05"])
    [issue] = errors(tmp_path, "{path: u.csv}")
    assert "'maturity_date' or 'term_months'" in issue.message


def test_bad_default_value(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", ["obligor,balance,rate", "A,1,0.05"])
    issues = errors(tmp_path, "{path: t.csv, defaults: {term_months: twelve, amortisation: custom}}")
    assert len(issues) == 2
    paths = {i.path: i for i in issues}
    assert "'twelve' is not a whole number" in paths["pools[0].tape.defaults.term_months"].message
    assert "'custom' is not possible" in paths["pools[0].tape.defaults.amortisation"].message


# --------------------------------------------------------------------------- cell errors


def cell_issue(tmp_path: Path, rows: list[str], tape: str = "{path: t.csv}") -> Issue:
    write_csv(tmp_path / "t.csv", rows)
    [issue] = errors(tmp_path, tape)
    assert issue.file.endswith("t.csv")
    return issue


def test_bad_number_reports_spreadsheet_row(tmp_path: Path) -> None:
    issue = cell_issue(
        tmp_path,
        [BASIC, "A,100,0.05,2026-01-31", "B,1O0,0.05,2026-01-31", "C,100,0.05,2026-01-31"],
    )
    assert (issue.line, issue.column) == (3, 2)
    assert issue.message.startswith("row 3, column 'balance': '1O0' is not an amount")
    assert "1,250,000" in issue.hint
    assert str(issue).startswith(f"{issue.file}:3:2: row 3")


def test_row_numbers_survive_blank_lines(tmp_path: Path) -> None:
    issue = cell_issue(tmp_path, [BASIC, "A,100,0.05,2026-01-31", "", ",,,", "B,100,x,2026-01-31"])
    assert issue.line == 5 and "row 5, column 'rate'" in issue.message


def test_bad_number_under_a_mapped_chinese_header(tmp_path: Path) -> None:
    issue = cell_issue(
        tmp_path,
        ["借款人,贷款余额,利率,期限", "甲,100,0.05,12", "乙,一百,0.05,12"],
        "{path: t.csv, columns: {obligor: 借款人, balance: 贷款余额, rate: 利率, term_months: 期限}}",
    )
    assert issue.line == 3 and "column '贷款余额' (balance)" in issue.message


def test_bad_date(tmp_path: Path) -> None:
    issue = cell_issue(tmp_path, [BASIC, "A,100,0.05,2026-02-30"])
    assert (issue.line, issue.column) == (2, 4)
    assert "'2026-02-30' is not a date" in issue.message and "2026-06-30" in issue.hint


def test_both_and_neither_maturity_and_term(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [BASIC + ",term_months", "A,1,0.05,2026-01-31,12", "B,1,0.05,,", "C,1,0.05,,12"],
    )
    issues = errors(tmp_path, "{path: t.csv}")
    assert [(i.line, i.column) for i in issues] == [(2, 4), (3, 4)]
    assert "both maturity_date" in issues[0].message
    assert "neither maturity_date nor term_months" in issues[1].message
    assert "exactly one" in issues[0].hint


def test_bad_and_custom_amortisation(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [BASIC + ",amortisation", "A,1,0.05,2026-01-31,balloon", "B,1,0.05,2026-01-31,custom"],
    )
    bad, custom = errors(tmp_path, "{path: t.csv}")
    assert bad.line == 2 and "'balloon' is not one of bullet" in bad.message
    assert "'annuity'" in bad.hint
    assert custom.line == 3 and "custom" in custom.message and "`loans:`" in custom.hint


def test_rates_and_indices(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [
            "obligor,balance,rate,index,spread,term_months",
            "A,1,3.5,,,12",  # a percentage written as a number
            "B,1,0.05,LPR1Y,0.01,12",  # both fixed and floating
            "C,1,,,,12",  # neither
            "D,1,,LPR5Y,0.01,12",  # unknown index
            "E,1,0.05,,0.01,12",  # spread on a fixed loan
        ],
    )
    issues = errors(tmp_path, "{path: t.csv}")
    text = {i.line: i for i in issues}
    assert "3.5 is not an annual rate" in text[2].message and "0.035" in text[2].hint
    assert "both a fixed rate and index 'LPR1Y'" in text[3].message
    assert "neither a rate nor an index" in text[4].message
    assert "unknown index 'LPR5Y'" in text[5].message and "LPR1Y" in text[5].hint
    assert "spread is given for a fixed-rate loan" in text[6].message


def test_dates_and_terms_inside_the_deal(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [BASIC + ",term_months", "A,1,0.05,2025-01-15,", "B,1,0.05,2027-02-01,", "C,1,0.05,,25"],
    )
    issues = errors(tmp_path, "{path: t.csv}")
    assert [i.line for i in issues] == [2, 3, 4]
    assert "on or before closing" in issues[0].message
    assert "after the legal final date" in issues[1].message
    assert "runs past the legal final date" in issues[2].message and "24 months" in issues[2].message


def test_ranges_guarantees_and_duplicates(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "t.csv",
        [
            "id,obligor,balance,rate,term_months,pd,guarantor,guarantee_share,industry",
            "L1,A,-5,0.05,12,0.02,,,bio",
            "L1,B,1,0.05,12,1.5,,,bio",
            "L3,C,1,0.05,12.5,,,0.5,bio",
            "L4,A,1,0.05,12,0.03,A,,soft",
            "L5,D,1,0.05,12,,Gama-Guarantee,,",
        ],
    )
    issues = errors(tmp_path, "{path: t.csv}")
    messages = [(i.line, i.message) for i in issues]

    def has(line: int, text: str) -> bool:
        return any(n == line and text in m for n, m in messages)

    assert has(2, "balance -5 must be positive")
    assert has(3, "pd 1.5 is not an annual probability")
    assert has(3, "id 'L1' repeats row 2")
    assert has(4, "'12.5' is not a whole number")
    assert has(4, "a guarantee share is given without a guarantor")
    assert has(5, "cannot guarantee its own loan")
    assert has(5, "obligor 'A' has pd 0.03 here but 0.02 in row 2")
    assert has(5, "obligor 'A' has industry 'soft' here but 'bio' in row 2")
    assert has(6, "unknown guarantor 'Gama-Guarantee'")
    assert any("did you mean 'Gamma-Guarantee'" in i.hint for i in issues)


def test_many_bad_cells_are_capped(tmp_path: Path) -> None:
    rows = [BASIC] + [f"O{k},bad,0.05,2026-01-31" for k in range(50)]
    write_csv(tmp_path / "t.csv", rows)
    issues = errors(tmp_path, "{path: t.csv}")
    assert len(issues) == MAX_CELL_ISSUES + 1
    assert [i.line for i in issues[:MAX_CELL_ISSUES]] == list(range(2, 2 + MAX_CELL_ISSUES))
    last = issues[-1]
    assert last.message == f"... and {50 - MAX_CELL_ISSUES} more problems in this tape"
    assert last.line == 2 + MAX_CELL_ISSUES


# --------------------------------------------------------------------------- size


def test_100k_rows(tmp_path: Path) -> None:
    n = 100_000
    rng = np.random.default_rng(7)
    balance = rng.integers(10_000, 5_000_000, n)
    term = rng.integers(1, 24, n)
    rate = rng.integers(300, 800, n) / 10_000
    obligor = [f"企业{k % 9973:05d}" for k in range(n)]
    frame = pd.DataFrame(
        {
            "借款人": obligor,
            "贷款余额": [f"{b:,}" for b in balance],
            "利率": [f"{r:.2%}" if k % 2 else f"{r}" for k, r in enumerate(rate)],
            "期限": term,
        }
    )
    frame.to_csv(tmp_path / "big.csv", index=False, encoding="utf-8-sig")
    cols = "{obligor: 借款人, balance: 贷款余额, rate: 利率, term_months: 期限}"
    tape = load(tmp_path, f"{{path: big.csv, columns: {cols}}}")["p0"]
    assert len(tape) == n
    assert tape.total_balance() == float(balance.sum())
    assert np.allclose(tape.frame["rate"].to_numpy(), rate)
    assert (tape.frame["term_months"].to_numpy(dtype=np.int64) == term).all()
    assert tape.obligor_names() == list(dict.fromkeys(obligor))
    assert tape.frame["id"].is_unique


def test_pledged_ip_value_volatility_column(tmp_path: Path) -> None:
    # a tape's pledged IP may carry its own value volatility (as pledged_ip.value_volatility)
    from ipabs.api import _model
    from ipabs.deal.load import load_deal

    write_csv(
        tmp_path / "t.csv",
        [
            "id,obligor,balance,rate,term_months,appraised_value,value_volatility",
            "L1,A,500,0.05,12,300,0.4",
            "L2,B,500,0.05,12,300,",
            "L3,C,500,0.05,12,,",
        ],
    )
    (tmp_path / "deal.yaml").write_text(deal_text("{path: t.csv}"), encoding="utf-8")
    deal = load_deal(tmp_path / "deal.yaml")
    vol = _model(deal).assets.value_volatility
    assert vol[0] == 0.4 and np.isnan(vol[1]) and np.isnan(vol[2])
    write_csv(
        tmp_path / "t.csv",
        [
            "id,obligor,balance,rate,term_months,appraised_value,value_volatility",
            "L1,A,100,0.05,12,300,-0.1",
            "L2,B,100,0.05,12,,0.3",
        ],
    )
    messages = [(i.line, i.message, i.hint) for i in errors(tmp_path, "{path: t.csv}")]
    assert any(n == 2 and "value_volatility -0.1 must not be negative" in m for n, m, _ in messages)
    assert any(
        n == 3 and "without an appraised_value" in m and "appraised_value" in h for n, m, h in messages
    )
