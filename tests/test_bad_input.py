"""Bad input never gives a silent wrong answer, a hang or a traceback: values outside the
stated bounds, hostile YAML, mis-encoded files and malformed tapes are refused with a located
error (exit 2), and the one fraction type accepts percentages everywhere."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter

from ipabs.deal import types as T
from ipabs.deal.load import parse_deal
from ipabs.deal.risk import RiskModel
from ipabs.deal.schema import Deal
from ipabs.errors import DealError, Issue

FILE = "deal.yaml"


def mutate(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` in ``text``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def issues_of(text: str) -> list[Issue]:
    with pytest.raises(DealError) as info:
        parse_deal(text, FILE)
    return info.value.issues


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# --------------------------------------------------------------------------- bounds


BOUNDS = [
    # (id, old, new, field path, words in the message)
    ("loan rate of 120%", "rate: 5.5%", "rate: 120%", "pools[0].loans[0].rate", "between -100% and 100%"),
    ("loan rate of 1.2", "rate: 5.5%", "rate: 1.2", "pools[0].loans[0].rate", "write 0.012 or '1.2%'"),
    ("coupon of 120%", "coupon: 3.2%", "coupon: 120%", "tranches[0].coupon", "between -100% and 100%"),
    ("negative coupon", "coupon: 3.2%", "coupon: -5%", "tranches[0].coupon", "must not be negative"),
    ("spread of 150%", "spread: 1.5%", "spread: 150%", "pools[0].loans[1].rate.spread", "100%"),
    ("index level of 3.45", "LPR1Y: 3.45%", "LPR1Y: 3.45", "indices.LPR1Y", "between -100% and 100%"),
    ("balance of 1e300", "balance: 9.5m", "balance: 1e300", "tranches[0].balance", "at most 1e+15"),
    ("loan balance of 1e300", "balance: 6m", "balance: 1.0e+300", "pools[0].loans[0].balance", "1e+15"),
    ("negative trigger threshold", "threshold: 10%", "threshold: -0.5", "triggers[0].threshold", "negative"),
    ("cdr trigger above 100%", "threshold: 10%", "threshold: 150%", "triggers[0].threshold", "at most 1"),
    ("empty cdr_vector", "defaults: {cdr: 2%}", "defaults: {cdr_vector: []}", "cdr_vector", "at least 1"),
    ("term of a billion months", "term_months: 24", "term_months: 1000000000", "term_months", "1200"),
    ("legal final 9999-12-31", "2027-01-15", "9999-12-31", "deal.legal_final_date", "2199-12-31"),
    ("default in period 0", "{cdr: 2%}", "{cdr: 2%, obligors: {AlphaTech: 0}}", "AlphaTech", "at least 1"),
    (
        "default after legal final",
        "{cdr: 2%}",
        "{cdr: 2%, obligors: {AlphaTech: 13}}",
        "AlphaTech",
        "12 periods",
    ),
    ("a date written as seconds", "2024-01-15", "1705276800", "deal.closing_date", "YYYY-MM-DD"),
    (
        "amortisation schedule above the balance",
        "    coupon: 3.2%\n",
        "    coupon: 3.2%\n    amortisation_schedule: [9m, 12m, 5m]\n",
        "tranches[0].amortisation_schedule",
        "above the tranche balance",
    ),
]


@pytest.mark.parametrize(("old", "new", "path", "words"), [b[1:] for b in BOUNDS], ids=[b[0] for b in BOUNDS])
def test_out_of_bounds_value_is_a_located_error(
    minimal_text: str, old: str, new: str, path: str, words: str
) -> None:
    text = mutate(minimal_text, old, new)
    issues = issues_of(text)
    assert len(issues) == 1, issues
    issue = issues[0]
    assert issue.path.endswith(path), issue
    assert words in issue.message, issue
    assert issue.line == line_of(text, new.strip().splitlines()[-1]), issue


def test_rates_inside_the_bounds_still_load(minimal_text: str) -> None:
    text = mutate(minimal_text, "rate: 5.5%", "rate: -0.5%")  # negative loan rates exist
    text = mutate(text, "coupon: 3.2%", "coupon: 99%")
    deal = parse_deal(text, FILE)
    assert deal.spec.pools[0].loans[0].rate == pytest.approx(-0.005)
    assert TypeAdapter(T.Money).validate_python("1e15") == T.MAX_AMOUNT


def test_tape_and_yaml_share_the_rate_rule(tmp_path: Path, minimal_text: str) -> None:
    """A loan rate of 1.2 is refused alike in a tape and in the YAML."""
    (tmp_path / "tape.csv").write_text(
        "obligor,balance,rate,maturity_date\nAlphaTech,1000000,1.2,2026-01-15\n", encoding="utf-8"
    )
    pool = "  - name: park\n    loans:\n"
    text = mutate(minimal_text, pool, "  - name: taped\n    tape: {path: tape.csv}\n" + pool)
    with pytest.raises(DealError) as info:
        parse_deal(text, FILE, base_dir=tmp_path)
    (tape_issue,) = info.value.issues
    assert "rate 1.2 is not an annual rate" in tape_issue.message
    yaml_issue = issues_of(mutate(minimal_text, "rate: 5.5%", "rate: 1.2"))[0]
    assert "rate" in yaml_issue.path


# --------------------------------------------------------------------------- one fraction type

# float fields that are not fractions: multiples written in percent of a standard curve, a
# stress factor and the Student t degrees of freedom
NOT_FRACTIONS = {"sda", "psa", "pd_multiplier", "degrees_of_freedom"}


def _is_money(tp: Any) -> bool:
    return any(getattr(m, "func", None) is T._money for m in getattr(tp, "__metadata__", ()))


def _sample(tp: Any) -> tuple[Any, Any] | None:
    """(input, expected) with "3%" in every float slot of ``tp``, or None when it has none."""
    if _is_money(tp):
        return None
    length = 1  # a list as long as its least length (a list of roll rates has four)
    while typing.get_origin(tp) is Annotated:
        for m in tp.__metadata__:
            length = max(length, getattr(m, "min_length", 1) or 1)
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            found = _sample(member)
            if found is not None:
                return found
        return None
    if origin is list:
        found = _sample(typing.get_args(tp)[0])
        return None if found is None else ([found[0]] * length, [found[1]] * length)
    if origin is dict:
        found = _sample(typing.get_args(tp)[1])
        return None if found is None else ({"k": found[0]}, {"k": found[1]})
    if tp is float:
        return "3%", 0.03
    return None


def _models(tp: Any) -> list[type[BaseModel]]:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return [m for arg in typing.get_args(tp) for m in _models(arg)]


def fraction_fields() -> list[tuple[str, Any, Any, Any]]:
    """Every float-valued field of the deal language that is not an amount of money."""
    out, seen, todo = [], set(), [Deal, RiskModel]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, f in model.model_fields.items():
            annotation = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation
            todo += _models(f.annotation)
            found = _sample(annotation)
            if found is not None and name not in NOT_FRACTIONS:
                out.append((f"{model.__name__}.{name}", annotation, *found))
    return sorted(out, key=lambda x: x[0])


FRACTIONS = fraction_fields()


def test_the_walk_finds_the_fraction_fields() -> None:
    names = {f[0] for f in FRACTIONS}
    assert {"RiskModel.correlation", "Obligor.pd", "Tranche.coupon", "Trigger.threshold"} <= names
    assert len(names) > 25


@pytest.mark.parametrize(
    ("annotation", "given", "expected"), [f[1:] for f in FRACTIONS], ids=[f[0] for f in FRACTIONS]
)
def test_every_fraction_field_accepts_a_percentage(annotation: Any, given: Any, expected: Any) -> None:
    assert TypeAdapter(annotation).validate_python(given) == pytest.approx(expected)


def test_correlation_written_as_a_percentage(minimal_text: str) -> None:
    deal = parse_deal(minimal_text + "risk: {correlation: 30%, default_pd: 2%}\n", FILE)
    assert deal.spec.risk is not None and deal.spec.risk.correlation == pytest.approx(0.3)


# --------------------------------------------------------------------------- hostile YAML

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _validate_bounded(path: Path, seconds: float = 60.0, memory: int = 2 << 30) -> Any:
    """``ipabs validate PATH`` in a child process limited to ``memory`` bytes of address space
    and ``seconds`` of wall time: a regression fails the test instead of hanging the run."""
    import os
    import resource
    import subprocess
    import sys

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "ipabs", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=limit,
        env=env,
        check=False,
    )


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 400
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    done = _validate_bounded(path)
    assert done.returncode == 2, done.stderr
    assert f"{path}:6:1: f[0]: aliases (*name) expand to more than 100,000 values" in done.stderr
    assert "Traceback" not in done.stderr


def test_deep_nesting_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("deal: " + "[" * 100_000 + "\n", encoding="utf-8")
    done = _validate_bounded(path)
    assert done.returncode == 2, done.stderr
    assert f"{path}:1:" in done.stderr and "nested more than 64 levels deep" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_yaml_depth_check_also_guards_the_pure_python_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from ipabs.deal.source import parse_yaml

    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    with pytest.raises(DealError, match="nested more than 64 levels deep"):
        parse_yaml("deal: " + "[" * 100_000, "deep.yaml")


def test_deep_aliases_are_refused(minimal_text: str) -> None:
    chain = "x0: &x0 [1]\n" + "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 200))
    issues = issues_of(chain)
    assert len(issues) == 1 and "nested more than 64 levels deep" in issues[0].message


def test_a_few_aliases_still_work(minimal_text: str) -> None:
    text = mutate(minimal_text, "    pledged_ip: {kind: patent,", "    pledged_ip: &ip {kind: patent,")
    text = mutate(text, "    pledged_ip: {appraised_value: 12m}", "    pledged_ip: *ip")
    deal = parse_deal(text, FILE)
    assert deal.spec.pools[0].loans[1].pledged_ip.appraised_value == 15_000_000


def test_oversized_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minimal_text: str
) -> None:
    from ipabs.deal import source
    from ipabs.deal.load import load_deal

    path = tmp_path / "big.yaml"
    path.write_text(minimal_text, encoding="utf-8")
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DealError) as info:
        load_deal(path)
    (issue,) = info.value.issues
    assert "a YAML file may be at most" in issue.message and "tape" in issue.hint


# --------------------------------------------------------------------------- locations


def test_gbk_file_names_the_line_of_the_first_bad_byte(tmp_path: Path, minimal_text: str) -> None:
    from ipabs.deal.load import load_deal

    path = tmp_path / "gbk.yaml"
    text = mutate(minimal_text, "name: park", "name: park  # 贷款园区")  # 贷 is 0xb4 0xfb in GBK
    path.write_bytes(text.encode("gbk"))
    with pytest.raises(DealError) as info:
        load_deal(path)
    (issue,) = info.value.issues
    assert (issue.line, issue.column) == (16, text.splitlines()[15].index("贷") + 1)
    assert "not UTF-8" in issue.message
    assert "save it as UTF-8" in issue.hint and "GBK" in issue.hint


def test_unclosed_quote_is_reported_where_it_opens(minimal_text: str) -> None:
    text = mutate(minimal_text, "name: Minimal IP-pledge deal", 'name: "Minimal IP-pledge deal')
    (issue,) = issues_of(text)
    assert (issue.line, issue.column) == (2, 9), issue
    assert "quote opened here is not closed" in issue.message


# --------------------------------------------------------------------------- loan tapes

TAPE_HEADER = "obligor,balance,rate,maturity_date"


def tape_issues(tmp_path: Path, minimal_text: str, name: str, content: str | bytes) -> list[Issue]:
    """Issues of the minimal deal with one more pool read from tape ``name``."""
    target = tmp_path / name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    pool = "  - name: park\n    loans:\n"
    text = mutate(minimal_text, pool, f"  - name: taped\n    tape: {{path: {name}}}\n" + pool)
    with pytest.raises(DealError) as info:
        parse_deal(text, FILE, base_dir=tmp_path)
    return info.value.issues


def test_tape_row_with_extra_fields_is_located_at_the_row(tmp_path: Path, minimal_text: str) -> None:
    rows = [TAPE_HEADER, "AlphaTech,1000000,0.05,2026-01-15", "", "BetaSoft,1000000,0.05,2026-01-15,x"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", "\n".join(rows) + "\n")
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.csv", 4, 5), issue
    assert "row 4 has 5 fields; the header has 4" in issue.message


def test_tape_row_with_missing_fields_is_located_at_the_row(tmp_path: Path, minimal_text: str) -> None:
    rows = [TAPE_HEADER, "AlphaTech,1000000,0.05,2026-01-15", "BetaSoft,1000000,0.05"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", "\n".join(rows) + "\n")
    assert (Path(issue.file).name, issue.line) == ("t.csv", 3), issue
    assert "row 3 has 3 fields; the header has 4" in issue.message


def test_tape_unclosed_quote_is_located_where_it_opens(tmp_path: Path, minimal_text: str) -> None:
    rows = [TAPE_HEADER, 'AlphaTech,"1000000,0.05,2026-01-15', "BetaSoft,1000000,0.05,2026-01-15"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", "\n".join(rows) + "\n")
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.csv", 2, 2), issue
    assert "quoted value opened in row 2 is not closed" in issue.message


def test_tape_with_two_balance_columns_is_refused(tmp_path: Path, minimal_text: str) -> None:
    rows = ["obligor,balance,rate,balance,maturity_date", "AlphaTech,1000000,0.05,2000000,2026-01-15"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", "\n".join(rows) + "\n")
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.csv", 1, 4), issue
    assert "column 'balance' appears twice in the header (columns 2 and 4)" in issue.message


def test_excel_tape_with_two_balance_columns_is_refused(tmp_path: Path, minimal_text: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        [["AlphaTech", 1e6, 0.05, 2e6, "2026-01-15"]],
        columns=["obligor", "balance", "rate", "x", "maturity_date"],
    )
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    import openpyxl

    book = openpyxl.load_workbook(tmp_path / "t.xlsx")
    book.active["D1"] = "balance"
    book.save(tmp_path / "t.xlsx")
    pool = "  - name: park\n    loans:\n"
    text = mutate(minimal_text, pool, "  - name: taped\n    tape: {path: t.xlsx}\n" + pool)
    with pytest.raises(DealError) as info:
        parse_deal(text, FILE, base_dir=tmp_path)
    (issue,) = info.value.issues
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.xlsx", 1, 4), issue
    assert "appears twice" in issue.message


def test_unrelated_repeated_column_is_harmless(tmp_path: Path, minimal_text: str) -> None:
    rows = ["obligor,balance,note,rate,note,maturity_date", "AlphaTech,1000000,a,0.05,b,2026-01-15"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    pool = "  - name: park\n    loans:\n"
    text = mutate(minimal_text, pool, "  - name: taped\n    tape: {path: t.csv}\n" + pool)
    deal = parse_deal(text, FILE, base_dir=tmp_path)
    assert deal.tapes["taped"].total_balance() == 1e6


def test_tape_balance_above_the_amount_bound(tmp_path: Path, minimal_text: str) -> None:
    rows = [TAPE_HEADER, "AlphaTech,1e300,0.05,2026-01-15"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", "\n".join(rows) + "\n")
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.csv", 2, 2), issue
    assert "is above 1e+15" in issue.message


def test_floating_coupon_below_zero_is_refused(minimal_text: str) -> None:
    text = mutate(minimal_text, "    coupon: 3.2%", "    coupon: {index: LPR1Y, spread: -4%}")
    (issue,) = issues_of(text)
    assert issue.path == "tranches[0].coupon" and issue.line == line_of(text, "spread: -4%")
    assert "falls to -0.5500%" in issue.message and "floor: 0" in issue.hint
    floored = mutate(minimal_text, "    coupon: 3.2%", "    coupon: {index: LPR1Y, spread: -4%, floor: 0}")
    assert parse_deal(floored, FILE).spec.tranches[0].coupon.floor == 0.0


def test_gbk_tape_is_located_at_its_own_line(tmp_path: Path, minimal_text: str) -> None:
    rows = [TAPE_HEADER, "AlphaTech,1000000,0.05,2026-01-15", "贷款甲,1000000,0.05,2026-01-15"]
    (issue,) = tape_issues(tmp_path, minimal_text, "t.csv", ("\n".join(rows) + "\n").encode("gbk"))
    assert (Path(issue.file).name, issue.line, issue.column) == ("t.csv", 3, 1), issue
    assert "line 3 is not UTF-8" in issue.message and "GBK" in issue.hint


def test_quote_closed_by_a_later_line_is_reported_where_it_opens(minimal_text: str) -> None:
    """The missing quote on line 42 pairs with the next one, on line 43, where the parser
    trips: the mistake is on line 42."""
    text = mutate(minimal_text, "  - name: trustee", '  - name: "trustee')
    text = mutate(text, "    annual_amount: 50k", '    annual_amount: "50k"')
    (issue,) = issues_of(text)
    assert (issue.line, issue.column) == (42, 11), issue
    assert "runs on to line 43" in issue.message and "(line 43, column 21)" in issue.message


def test_the_documented_percentage_example_loads() -> None:
    import re

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "montecarlo.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "correlation: 30%" in b)
    risk = RiskModel.model_validate(yaml.safe_load(block)["risk"])
    assert risk.correlation == pytest.approx(0.3) and risk.royalty.volatility == pytest.approx(0.25)
