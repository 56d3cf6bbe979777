"""Loan tapes: a CSV or Excel file of loans, read into one normalised DataFrame per pool.

A pool's ``tape`` names the file, maps loan fields to its columns and gives defaults for fields
the file lacks (see :class:`ipabs.deal.schema.TapeSource`)::

    tape:
      path: loans.csv
      columns: {obligor: 借款人, balance: 贷款余额, rate: 利率, maturity_date: 到期日}
      defaults: {amortisation: bullet, payment_frequency: quarterly}

Rules, in the order they apply to each field:

- a column is taken from ``columns`` when mapped there, else a column named like the field;
- a ``defaults`` value fills the blank cells of that column, or every row when there is no
  column (``rate`` defaults fill only fixed-rate rows, ``spread`` and ``rate_floor`` defaults
  only floating rows, a ``maturity_date`` or ``term_months`` default only rows without the
  other one);
- otherwise the built-in default of :data:`TAPE_FIELDS` applies; ``obligor``, ``balance``, one
  of ``rate``/``index`` and one of ``maturity_date``/``term_months`` have none.

A seasoned pool's tape may also carry ``age_months`` or ``origination_date``,
``original_balance`` and ``original_term_months``, checked against the balance and remaining term
at the cut-off date.

Every check works on whole columns; a bad cell is reported as ``file:row:column`` with the
row number a spreadsheet shows (the header is row 1), at most :data:`MAX_CELL_ISSUES` per tape.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ipabs.calendars import loan_age
from ipabs.deal.schema import Amortisation, DayCount, Deal, Frequency, Loan, PledgedIP, Pool
from ipabs.deal.source import SourceMap, not_utf8_issue
from ipabs.deal.types import MAX_AMOUNT
from ipabs.deal.validate import suggest
from ipabs.errors import DealError, Issue, format_path

MAX_CELL_ISSUES = 20
"""Most cell problems reported per tape; the rest are counted in a last "... and N more"."""

SUFFIXES = (".csv", ".xlsx", ".xlsm")
"""File types a tape may have."""

# choices as the deal language spells them; `custom` needs a schedule, which a row cannot hold
AMORTISATIONS: tuple[str, ...] = tuple(a for a in get_args(Amortisation) if a != "custom")
FREQUENCIES: tuple[str, ...] = get_args(Frequency)
DAY_COUNTS: tuple[str, ...] = get_args(DayCount)
IP_KINDS: tuple[str, ...] = get_args(PledgedIP.model_fields["kind"].annotation)

_LOAN = Loan.model_fields  # a tape row means what a YAML loan means, with its defaults

_EXPECTED = {  # kind -> (what a cell must be, how to write one)
    "text": ("text", "write text"),
    "money": ("an amount", "write a number such as 1250000 or 1,250,000"),
    "rate": ("a rate", "write an annual rate such as 0.035 or 3.5%"),
    "share": ("a share", "write a share between 0 and 1, such as 0.8 or 80%"),
    "probability": ("a probability", "write an annual probability such as 0.02 or 2%"),
    "date": ("a date", "write a date such as 2026-06-30"),
    "int": ("a whole number", "write a whole number such as 12"),
}


@dataclass(frozen=True)
class TapeField:
    """One loan field a tape can carry.

    Attributes
    ----------
    name : str
        Field name; also the column name looked for when ``columns`` does not map it.
    kind : str
        text, money, rate, share, probability, date, int or choice.
    default : Any
        Value for rows without one; ``None`` when the field has no built-in default.
    choices : tuple of str
        Allowed values of a choice field.
    """

    name: str
    kind: str
    default: Any = None
    choices: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        """What a cell of this field must hold, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        return _EXPECTED[self.kind][0]

    @property
    def fix(self) -> str:
        """How to write a valid cell."""
        if self.kind == "choice":
            return "write " + ", ".join(repr(c) for c in self.choices)
        return _EXPECTED[self.kind][1]


TAPE_FIELDS: dict[str, TapeField] = {
    f.name: f
    for f in (
        TapeField("id", "text"),
        TapeField("obligor", "text"),
        TapeField("balance", "money"),
        TapeField("rate", "rate"),
        TapeField("index", "text", ""),
        TapeField("spread", "rate", 0.0),
        TapeField("rate_floor", "rate", np.nan),
        TapeField("maturity_date", "date"),
        TapeField("term_months", "int"),
        TapeField("amortisation", "choice", _LOAN["amortisation"].default, AMORTISATIONS),
        TapeField("payment_frequency", "choice", _LOAN["payment_frequency"].default, FREQUENCIES),
        TapeField("interest_only_months", "int", 0),
        TapeField("day_count", "choice", _LOAN["day_count"].default, DAY_COUNTS),
        TapeField("ip_kind", "choice", PledgedIP.model_fields["kind"].default, IP_KINDS),
        TapeField("appraised_value", "money", np.nan),
        TapeField("value_volatility", "rate", np.nan),
        TapeField("guarantor", "text", ""),
        TapeField("guarantee_share", "share"),
        TapeField("guarantee_lag_months", "int", 0),
        TapeField("industry", "text", ""),
        TapeField("region", "text", ""),
        TapeField("pd", "probability", np.nan),
        # ---- seasoned pools
        TapeField("age_months", "int", 0),
        TapeField("origination_date", "date"),
        TapeField("original_balance", "money", np.nan),
        TapeField("original_term_months", "int"),
    )
}
"""The normalised columns of :attr:`LoanTape.frame`, in order, with their kinds and defaults."""

_NEEDED = ("obligor", "balance")
_DTYPES = {"text": object, "choice": object, "date": "datetime64[s]"}
_DTYPES.update(dict.fromkeys(("money", "rate", "share", "probability", "int"), "float64"))
_PAIRS = {
    "rate": "index",
    "maturity_date": "term_months",
    "term_months": "maturity_date",
    "age_months": "origination_date",  # ---- seasoned pools: one or the other on a row
    "origination_date": "age_months",
}
_STRIP = r"[,\s_，¥￥$]"  # thousands separators, spaces, currency signs (RE2 syntax)
_NAME = re.compile(r"^[A-Za-z\u0080-\uffff][\w\u0080-\uffff\-]*$")  # as ipabs.deal.types.Name
_YMD = r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


@dataclass(frozen=True, eq=False)
class LoanTape:
    """The loans of one pool read from a tape.

    Attributes
    ----------
    pool : str
        Pool name.
    file : str
        The tape file, as shown in messages.
    frame : pandas.DataFrame
        One row per loan with the columns of :data:`TAPE_FIELDS`, always present:
        ``id``, ``obligor``, ``index``, ``guarantor``, ``industry``, ``region`` (str, ``""``
        when none); ``balance`` (> 0), ``rate`` (NaN when floating), ``spread``,
        ``rate_floor``, ``appraised_value``, ``guarantee_share``, ``pd`` (float64, NaN when
        none); ``maturity_date`` (datetime64[s] at midnight, NaT when ``term_months`` is
        given); ``term_months`` (Int64, <NA> when ``maturity_date`` is given);
        ``interest_only_months``, ``guarantee_lag_months`` (int64); ``amortisation``,
        ``payment_frequency``, ``day_count``, ``ip_kind`` (str, canonical spelling).
    """

    pool: str
    file: str
    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    def obligor_names(self) -> list[str]:
        """Obligor names, each once, in tape order.

        Returns
        -------
        list of str
        """
        return [str(n) for n in pd.unique(self.frame["obligor"])]

    def total_balance(self) -> float:
        """Sum of the loan balances at closing.

        Returns
        -------
        float
        """
        return float(self.frame["balance"].sum())


def read_tapes(spec: Deal, smap: SourceMap, base_dir: str | Path) -> dict[str, LoanTape]:
    """Read the loan tape of every pool that has one.

    Parameters
    ----------
    spec : Deal
        The validated deal.
    smap : SourceMap
        Positions in the deal file, to locate problems with a ``tape`` section.
    base_dir : str or Path
        Directory of the deal file; tape paths are relative to it.

    Returns
    -------
    dict
        Pool name -> :class:`LoanTape`, for pools with a ``tape``.

    Raises
    ------
    DealError
        With the problems of all tapes: bad ``tape`` settings located in the deal file, bad
        cells located as ``tape-file:row:column``.
    """
    readers = [
        _TapeReader(spec, smap, i, pool, Path(base_dir))
        for i, pool in enumerate(spec.pools)
        if pool.tape is not None
    ]
    frames = {r.pool.name: r.read() for r in readers}
    known = {o.name for o in spec.obligors}
    for pool in spec.pools:
        known.update(a.obligor for a in (*pool.loans, *pool.leases, *pool.royalties))
    for frame in frames.values():
        if frame is not None:
            known.update(frame["obligor"].unique())
    issues: list[Issue] = []
    tapes: dict[str, LoanTape] = {}
    for r in readers:
        frame = frames[r.pool.name]
        if frame is not None:
            r.check_guarantors(frame, known)
            tapes[r.pool.name] = LoanTape(r.pool.name, r.display, frame)
        issues.extend(r.issues())
    if issues:
        raise DealError(issues)
    return tapes


# --------------------------------------------------------------------------- cell parsers
# Each takes the raw column (or a one-value Series for a YAML default) and returns
# (values, blank, bad): parsed values with NaN/NaT where blank or bad, and two bool masks.


def _text(raw: pd.Series) -> pd.Series:
    """Cells as stripped strings, ``""`` when blank."""
    if pd.api.types.is_string_dtype(raw) and not pd.api.types.is_object_dtype(raw):
        return raw.fillna("").str.strip()
    cells = raw.to_numpy(dtype=object, copy=True)
    if pd.api.types.infer_dtype(cells, skipna=True) in ("string", "empty"):
        cells[pd.isna(cells)] = ""
        return pd.Series(cells, index=raw.index, dtype="str").str.strip()
    out = np.empty(len(cells), dtype=object)  # mixed Excel cells: rare and small
    for i, v in enumerate(cells):
        if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
            out[i] = ""
        elif isinstance(v, float) and v.is_integer():
            out[i] = str(int(v))  # an Excel id 1001 read as 1001.0
        elif isinstance(v, dt.datetime) and v.time() == dt.time():
            out[i] = v.date().isoformat()
        else:
            out[i] = str(v).strip()
    return pd.Series(out, index=raw.index, dtype="str")


def _arrow_text(raw: pd.Series) -> pa.Array:
    """Cells as a trimmed Arrow string array, ``""`` when blank."""
    try:  # string columns convert without copying
        arr = pa.array(raw, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Excel cells
        arr = pa.array(_text(raw).to_numpy(dtype=object), type=pa.large_string())
    return pc.fill_null(pc.utf8_trim_whitespace(arr), "")


def _numbers(raw: pd.Series, percent: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers, accepting thousands separators and, when ``percent``, a trailing ``%``."""
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw):
        return np.full(n, np.nan), raw.isna().to_numpy(), raw.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(raw):
        values = raw.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        return values, np.isnan(values), np.isinf(values)
    is_bool = np.zeros(n, bool)
    if pd.api.types.is_object_dtype(raw):  # Excel TRUE/FALSE cells are not numbers
        is_bool[:] = [isinstance(v, (bool, np.bool_)) for v in raw.to_numpy(dtype=object)]
    text = _arrow_text(raw)
    blank = pc.equal(text, "").to_numpy(zero_copy_only=False)
    clean = text
    pct = np.zeros(n, bool)
    ok = pc.match_substring_regex(clean, _NUMBER)
    if not pc.all(pc.or_(pc.equal(clean, ""), ok)).as_py():  # some cell needs cleaning
        clean = pc.replace_substring(clean, ",", "")  # the usual case, without a regex
        if pc.any(pc.match_substring_regex(clean, _STRIP)).as_py():
            clean = pc.replace_substring_regex(clean, _STRIP, "")
        if percent:
            pct = pc.ends_with(clean, "%").to_numpy(zero_copy_only=False)
            if pct.any():
                clean = pc.if_else(pct, pc.utf8_slice_codeunits(clean, 0, -1), clean)
        ok = pc.match_substring_regex(clean, _NUMBER)
    number = pc.cast(pc.if_else(ok, clean, pa.scalar(None, clean.type)), pa.float64())
    values = np.array(number.to_numpy(zero_copy_only=False), dtype="float64")
    values[pct] /= 100.0
    values[is_bool] = np.nan
    bad = ~blank & ~np.isfinite(values)
    values[bad] = np.nan
    return values, blank, bad


def _dates(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dates as ``datetime64[s]`` at midnight: ISO, ``2026/6/30``, ``2026.6.30``,
    ``2026年6月30日``, ``20260630`` and Excel date cells (a time of day is dropped)."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        values = raw.to_numpy(dtype="datetime64[D]").astype("datetime64[s]")
        blank = np.isnat(values)
        return values, blank, np.zeros(len(raw), bool)
    text = _arrow_text(raw)  # date cells become ISO text
    blank = pc.equal(text, "").to_numpy(zero_copy_only=False)
    if not pc.all(pc.or_(pc.equal(text, ""), pc.match_substring_regex(text, _YMD))).as_py():
        text = pc.replace_substring_regex(text, r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d*)?)?$", "")
        text = pc.replace_substring(pc.replace_substring_regex(text, r"\s*[/.年月]\s*", "-"), "日", "")
        text = pc.replace_substring_regex(text, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    values, ok = _ymd(text)
    return values, blank, ~blank & ~ok


def _ymd(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``Y-M-D`` strictly (no 30 February), vectorised: (datetime64[s] values, ok)."""
    matched = pc.match_substring_regex(text, _YMD)
    parts = pc.extract_regex(pc.if_else(matched, text, "1970-01-01"), _YMD)
    y, m, d = (
        np.asarray(pc.cast(pc.struct_field(parts, [k]), pa.int64()).to_numpy(zero_copy_only=False))
        for k in range(3)
    )
    ok = matched.to_numpy(zero_copy_only=False) & (m >= 1) & (m <= 12) & (d >= 1)
    month = ((y - 1970) * 12 + np.clip(m, 1, 12) - 1).astype("datetime64[M]")
    first = month.astype("datetime64[D]")
    ok &= d <= ((month + 1).astype("datetime64[D]") - first).astype(np.int64)
    values = np.full(len(ok), np.datetime64("NaT"), dtype="datetime64[s]")
    values[ok] = first[ok] + (d[ok] - 1).astype("timedelta64[D]")
    return values, ok


def _choices(raw: pd.Series, field: TapeField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical spellings of a choice field, matched ignoring case, spaces, '-' and '_'."""
    text = _text(raw)
    codes, uniques = pd.factorize(text)
    table = {_key(c): c for c in field.choices}
    canon = [table.get(_key(u), "" if u == "" else None) for u in uniques]
    unknown = np.array([c is None for c in canon] + [False], dtype=bool)
    values = np.array([c or "" for c in canon] + [""], dtype=object)[codes]
    return values, (text == "").to_numpy(), unknown[codes]


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]", "", unicodedata.normalize("NFKC", str(text))).lower()


# --------------------------------------------------------------------------- one tape


@dataclass
class _Source:
    """Where a field's values come from."""

    header: str | None = None  # column name in the file
    position: int = 0  # 1-based column position in the file
    default: Any = None  # value from `defaults` (None: not given)
    has_default: bool = False


class _TapeReader:
    """Reads one pool's tape and collects its issues."""

    def __init__(self, spec: Deal, smap: SourceMap, index: int, pool: Pool, base_dir: Path):
        assert pool.tape is not None
        self.spec, self.smap, self.pool = spec, smap, pool
        self.src = pool.tape
        self.base = ("pools", index, "tape")
        self.path = base_dir / self.src.path
        self.display = _display(self.path)
        self.excel = self.path.suffix.lower() in (".xlsx", ".xlsm")
        self.yaml_issues: list[Issue] = []
        self.cell_issues: list[tuple[int, int, str, str]] = []  # row, column, message, hint
        self.cell_count = 0
        self.sources: dict[str, _Source] = {}
        self.rows = np.zeros(0, dtype=np.int64)
        self.raw: dict[str, pd.Series] = {}  # field -> its column
        self.unreadable: dict[str, np.ndarray] = {}  # field -> cells reported as unreadable
        self.custom = np.zeros(0, bool)

    # ------------------------------------------------------------------ issues
    def at_yaml(self, where: tuple[Any, ...], message: str, hint: str = "", *, key: bool = False) -> None:
        path = (*self.base, *where)
        line, col = self.smap.locate(path, key=key)
        self.yaml_issues.append(Issue(self.smap.file, line, col, format_path(path), message, hint))

    def bad(self, mask: np.ndarray, field: str, problem: Callable[[int], str], hint: str = "") -> None:
        """Report the rows in ``mask`` of ``field``: at the cells when the field has a column,
        else once at its ``defaults`` entry (or at the tape)."""
        if not mask.any():
            return
        src = self.sources[field]
        rows = np.flatnonzero(mask)
        if src.header is None:
            where = ("defaults", field) if src.has_default else ("path",)
            self.at_yaml(where, f"{field}: {problem(int(rows[0]))}", hint)
            return
        self.cell_count += len(rows)
        for i in rows[: MAX_CELL_ISSUES + 1]:
            self.cell_issues.append(
                (int(self.rows[i]), src.position, f"{self.cell(i, field)}: {problem(int(i))}", hint)
            )

    def cell(self, i: int, field: str) -> str:
        """``row 5, column '贷款余额' (balance)`` for row position ``i``."""
        src = self.sources[field]
        text = f"row {self.rows[i]}, column {src.header!r}"
        if src.header != field:
            text += f" ({field})"
        if self.excel:
            text += f", cell {_column_letter(src.position)}{self.rows[i]}"
        return text

    def shown(self, i: int, field: str) -> str:
        """The raw cell text of ``field`` at row position ``i``, quoted."""
        raw = self.raw.get(field)
        if raw is None:
            return repr(self.src.defaults.get(field))
        value = raw.iloc[i]
        return (
            "a blank cell"
            if value is None or value is pd.NA or value != value
            else repr(value if isinstance(value, str) else str(value))
        )

    def issues(self) -> list[Issue]:
        cells = sorted(self.cell_issues)
        out = list(self.yaml_issues)
        out += [Issue(self.display, r, c, "", m, h) for r, c, m, h in cells[:MAX_CELL_ISSUES]]
        if self.cell_count > MAX_CELL_ISSUES:
            r, c, _m, _h = cells[MAX_CELL_ISSUES]
            more = self.cell_count - MAX_CELL_ISSUES
            out.append(
                Issue(
                    self.display,
                    r,
                    c,
                    "",
                    f"... and {more} more problem{'s' * (more > 1)} in this tape",
                    "fix the ones above and load the deal again",
                )
            )
        return out

    # ------------------------------------------------------------------ reading
    def read(self) -> pd.DataFrame | None:
        """Read, check and normalise the tape; ``None`` when it cannot be used."""
        self.check_settings()
        data = self.read_file()
        if data is None:
            return None
        if not self.resolve(list(data.columns)):
            return None
        return self.normalise(data)

    def check_settings(self) -> None:
        fields = list(TAPE_FIELDS)
        for section in ("columns", "defaults"):
            for name in getattr(self.src, section):
                if name not in TAPE_FIELDS:
                    self.at_yaml(
                        (section, name),
                        f"unknown loan field {name!r}",
                        suggest(name, fields) or "tape fields: " + ", ".join(fields),
                        key=True,
                    )
        for a, b in (("maturity_date", "term_months"), ("rate", "index")):
            if a in self.src.defaults and b in self.src.defaults:
                self.at_yaml(
                    ("defaults", b),
                    f"defaults give both {a} and {b}",
                    "give one of them; the other comes from the tape",
                )

    def read_file(self) -> pd.DataFrame | None:
        suffix = self.path.suffix.lower()
        if suffix not in SUFFIXES:
            hint = "save it as CSV (UTF-8) or .xlsx"
            self.at_yaml(("path",), f"unsupported tape file type {suffix or '(none)'!r}", hint)
            return None
        if not self.path.is_file():
            what = "is a directory" if self.path.is_dir() else "not found"
            self.at_yaml(
                ("path",),
                f"tape {what}: {self.display}",
                "the path is relative to the deal file's directory",
            )
            return None
        try:
            data = self.read_excel() if self.excel else self.read_csv()
        except _Unreadable as exc:
            self.at_yaml(("path",), f"cannot read tape {self.display}: {exc.args[0]}", exc.args[1])
            return None
        if data is None:
            return None
        blank = data.isna().all(axis=1).to_numpy()
        data = data[~blank].reset_index(drop=True)
        self.rows = self.rows[~blank]
        if data.empty:
            self.at_yaml(
                ("path",),
                f"tape {self.display} has no loans",
                "the first row is the header; put one loan on each following row",
            )
            return None
        return data

    def read_csv(self) -> pd.DataFrame | None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise _Unreadable(exc.strerror or str(exc), "check the file's permissions") from None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # at the tape's own line and column, as the deal file's encoding errors are
            where = not_utf8_issue(self.display, data, exc)
            hint = "save the tape as 'CSV UTF-8' (Excel: File > Save As)"
            if "GBK" in where.hint:
                hint += "; it reads as GBK/GB18030 text"
            self.cell_issues.append(
                (where.line, where.column, f"line {where.line} is not UTF-8 text: {where.message}", hint)
            )
            self.cell_count += 1
            return None
        if not data.strip(b"\xef\xbb\xbf \t\r\n"):
            raise _Unreadable("the file is empty", "the first row must be the header")
        try:
            frame = pd.read_csv(
                BytesIO(data), engine="pyarrow", dtype=str, keep_default_na=False, na_values=[""]
            )
        except Exception as exc:  # pyarrow reports malformed rows as ArrowInvalid
            # pyarrow does not say where: find the row again to report it at its line
            shape = _csv_shape_problem(data.decode("utf-8-sig"))
            if shape is None:
                raise _Unreadable(
                    str(exc).strip().splitlines()[0],
                    "check the CSV: every row needs the header's number of fields",
                ) from None
            self.cell_issues.append(shape)
            self.cell_count += 1
            return None
        header_line, header = _csv_header(data.decode("utf-8-sig"))
        if not self.unique_header(header, header_line):
            return None
        frame.columns = [str(c).lstrip("\ufeff").strip() for c in frame.columns]
        self.rows = _csv_rows(data, len(frame))
        return frame

    def unique_header(self, header: list[Any], line: int) -> bool:
        """False (and report it) when a column the tape reads appears twice in the header:
        which of the two is meant cannot be known."""
        used = set(TAPE_FIELDS) | {c.strip() for c in self.src.columns.values()}
        first: dict[str, int] = {}
        ok = True
        for position, name in enumerate(header, 1):
            text = "" if name is None else str(name).lstrip("\ufeff").strip()
            if not text:
                continue
            if text in first and text in used:
                self.cell_issues.append(
                    (
                        line,
                        position,
                        f"column {text!r} appears twice in the header (columns {first[text]} and {position})",
                        "rename or remove one of them: the tape must say which one holds the values",
                    )
                )
                self.cell_count += 1
                ok = False
            first.setdefault(text, position)
        return ok

    def read_excel(self) -> pd.DataFrame | None:
        try:
            with pd.ExcelFile(self.path, engine="openpyxl") as book:
                sheets = [str(s) for s in book.sheet_names]
                sheet = self.src.sheet if self.src.sheet is not None else sheets[0]
                if sheet not in sheets:
                    self.at_yaml(
                        ("sheet",),
                        f"tape {self.display} has no sheet {sheet!r}",
                        suggest(sheet, sheets) or "its sheets: " + ", ".join(sheets),
                    )
                    return None
                frame = pd.read_excel(book, sheet_name=sheet, dtype=object)
                header = next(book.book[sheet].iter_rows(max_row=1, values_only=True), ())
        except Exception as exc:  # openpyxl raises many kinds for damaged files
            raise _Unreadable(
                f"{type(exc).__name__}: {exc}", "open it in Excel and save it again as .xlsx"
            ) from None
        if not self.unique_header(list(header), 1):
            return None
        frame.columns = [str(c).strip() for c in frame.columns]
        self.rows = np.arange(2, len(frame) + 2, dtype=np.int64)
        return frame

    def resolve(self, header: list[str]) -> bool:
        """Find each field's column or default; False when a required one is missing."""
        position = {name: i + 1 for i, name in reversed(list(enumerate(header)))}
        listing = "the tape's columns are: " + ", ".join(repr(h) for h in header)
        ok = True
        for name in TAPE_FIELDS:
            src = _Source(default=self.src.defaults.get(name), has_default=name in self.src.defaults)
            mapped = self.src.columns.get(name)
            if mapped is not None:
                if mapped.strip() in position:
                    src.header, src.position = mapped.strip(), position[mapped.strip()]
                else:
                    hint = suggest(mapped, header)
                    self.at_yaml(
                        ("columns", name),
                        f"the tape has no column {mapped!r}",
                        f"{hint} {listing}" if hint else listing,
                    )
                    ok = False
            elif name in position:
                src.header, src.position = name, position[name]
            self.sources[name] = src
        for name in _NEEDED:
            ok &= self.require((name,), header, listing)
        ok &= self.require(("rate", "index"), header, listing)
        ok &= self.require(("maturity_date", "term_months"), header, listing)
        return ok

    def require(self, names: tuple[str, ...], header: list[str], listing: str) -> bool:
        if any(self.sources[n].header is not None or self.sources[n].has_default for n in names):
            return True
        if any(n in self.src.columns for n in names):
            return False  # already reported as a missing mapped column
        what = " or ".join(repr(n) for n in names)
        close = [suggest(n, header) for n in names]
        hint = next((h for h in close if h), "")
        self.at_yaml(
            ("path",),
            f"the tape has no column for {what}",
            f"{hint} {listing}; map one with `columns: {{{names[0]}: COLUMN}}` or give `defaults`".lstrip(),
        )
        return False

    # ------------------------------------------------------------------ parsing
    def parse(self, name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Values of one field and the mask of rows whose value came from a cell."""
        field, src = TAPE_FIELDS[name], self.sources[name]
        raw = self.raw.get(name)
        if raw is not None:
            values, blank, bad = self.convert(raw, field)
            self.unreadable[name] = bad
            if name == "amortisation":
                self.custom = bad & _text(raw).str.lower().eq("custom").to_numpy()
                bad = bad & ~self.custom  # reported with its own message
            self.bad(
                bad,
                name,
                lambda i: f"{self.shown(i, name)} is not {field.expected}",
                field.fix,
            )
            given = ~blank & ~self.unreadable[name]
        else:
            values = np.full(n, _missing(field), dtype=_DTYPES[field.kind])
            given = np.zeros(n, bool)
        if src.has_default:
            dv, dblank, dbad = self.convert(pd.Series([src.default], dtype=object), field)
            if dbad[0] or dblank[0]:  # follow-on checks skip the rows it would fill
                self.unreadable[name] = self.unreadable.get(name, np.zeros(n, bool)) | ~given
            if name == "amortisation" and _key(src.default) == "custom":
                self.at_yaml(
                    ("defaults", name),
                    "amortisation 'custom' is not possible on a tape",
                    "put loans with a custom schedule under `loans:` in the deal file",
                )
            elif dbad[0] or dblank[0]:
                self.at_yaml(
                    ("defaults", name),
                    f"default {src.default!r} is not {field.expected}",
                    field.fix,
                )
            else:
                fill = ~given
                partner = _PAIRS.get(name)
                if partner is not None and partner in self.raw:
                    fill &= _blank_cells(self.raw[partner])
                values[fill] = dv[0]
        elif field.default is not None:
            values[~given] = field.default
        return values, given

    @staticmethod
    def convert(raw: pd.Series, field: TapeField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parse cells by the field's kind: (values, blank, bad)."""
        kind = field.kind
        if kind == "text":
            text = _text(raw)
            blank = (text == "").to_numpy()
            return text.to_numpy(dtype=object, copy=True), blank, np.zeros(len(raw), bool)
        if kind == "date":
            return _dates(raw)
        if kind == "choice":
            return _choices(raw, field)
        values, blank, bad = _numbers(raw, percent=kind in ("rate", "share", "probability"))
        if kind == "int":
            frac = np.isfinite(values) & (values != np.round(values))
            bad |= frac
            values[frac] = np.nan
        return values, blank, bad

    def normalise(self, data: pd.DataFrame) -> pd.DataFrame:
        n = len(data)
        self.custom = np.zeros(n, bool)
        self.raw = {k: data[s.header] for k, s in self.sources.items() if s.header is not None}
        col: dict[str, np.ndarray] = {}
        given: dict[str, np.ndarray] = {}
        for name in TAPE_FIELDS:
            col[name], given[name] = self.parse(name, n)
        self.check_values(col, given)
        # counts outside any sensible range were reported; keep the casts below warning-free
        for name in (
            "term_months",
            "interest_only_months",
            "guarantee_lag_months",
            "age_months",
            "original_term_months",
        ):
            v = col[name]
            col[name] = np.where(np.abs(v) < 1e6, v, np.nan)
        frame = pd.DataFrame({name: _column(TAPE_FIELDS[name], col[name]) for name in TAPE_FIELDS})
        self.check_frame(frame)
        return frame

    # ------------------------------------------------------------------ checks
    def check_values(self, col: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> None:
        """Required values, ranges and combinations of fields, row by row (vectorised).

        Normalises ``col`` in place: rate/spread/floor by fixed or floating, guarantee share.
        """
        self.bad(
            self.custom,
            "amortisation",
            lambda i: "amortisation 'custom' is not possible on a tape",
            "put loans with a custom schedule under `loans:` in the deal file",
        )
        obligor = col["obligor"]
        self.bad(obligor == "", "obligor", lambda i: "the obligor is blank", "name the borrower")
        for name in ("obligor", "guarantor"):  # names the deal file can refer to
            self.bad(
                _invalid_names(col[name]),
                name,
                lambda i, name=name: f"{col[name][i]!r} is not a valid {name} name",
                "start with a letter; use letters, digits, '_' or '-' (no spaces), "
                "as for names in the deal file",
            )
        bal = col["balance"]
        self.bad(
            np.isnan(bal) & ~self.bad_cells("balance"),
            "balance",
            lambda i: "the balance is blank",
            "give the outstanding principal at closing",
        )
        self.bad(
            bal <= 0,
            "balance",
            lambda i: f"balance {bal[i]:g} must be positive",
            "drop repaid loans from the tape",
        )
        for name in ("balance", "appraised_value"):  # the deal file's bound on amounts
            v = col[name]
            self.bad(
                v > MAX_AMOUNT,
                name,
                lambda i, v=v, name=name: f"{name} {v[i]:g} is above {MAX_AMOUNT:.0e}",
                "check the number of zeros",
            )
        self.check_rates(col, given)
        self.check_term(col)
        self.check_seasoning(col, given)
        for name in ("interest_only_months", "guarantee_lag_months", "appraised_value"):
            v = col[name]
            self.bad(v < 0, name, lambda i, v=v, name=name: f"{name} {v[i]:g} must not be negative")
        vol = col["value_volatility"]  # as pledged_ip.value_volatility: the IP's own value dispersion
        self.bad(vol < 0, "value_volatility", lambda i: f"value_volatility {vol[i]:g} must not be negative")
        self.bad(
            ~np.isnan(vol) & np.isnan(col["appraised_value"]),
            "value_volatility",
            lambda i: "value_volatility is given without an appraised_value",
            "give the pledged IP's appraised_value, or leave value_volatility blank",
        )
        p = col["pd"]
        self.bad(
            (p < 0) | (p >= 1),
            "pd",
            lambda i: f"pd {p[i]:g} is not an annual probability",
            "a probability lies in [0, 1): write 2% as 0.02 or '2%'",
        )

        # a guarantee share needs a guarantor; it defaults to 1 with one and is 0 without
        share = col["guarantee_share"]
        guaranteed = col["guarantor"] != ""
        self.bad(
            (share < 0) | (share > 1),
            "guarantee_share",
            lambda i: f"guarantee share {share[i]:g} is not between 0 and 1",
            "write 80% as 0.8 or '80%'",
        )
        self.bad(
            given["guarantee_share"] & ~guaranteed & (share != 0),
            "guarantee_share",
            lambda i: "a guarantee share is given without a guarantor",
            "fill in the guarantor, or leave the share blank",
        )
        col["guarantee_share"] = np.where(guaranteed, np.where(np.isnan(share), 1.0, share), 0.0)
        self.bad(
            guaranteed & (col["guarantor"] == obligor),
            "guarantor",
            lambda i: f"obligor {obligor[i]!r} cannot guarantee its own loan",
            "name a third party, or leave the guarantor blank",
        )

    def check_rates(self, col: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> None:
        """A fixed rate xor a floating index; spread and floor only with an index."""
        index = col["index"]
        floating = index != ""
        self.bad(
            given["rate"] & floating,
            "rate",
            lambda i: f"both a fixed rate and index {index[i]!r} are given",
            "leave the rate blank for a floating loan (index + spread)",
        )
        rate = col["rate"] = np.where(floating, np.nan, col["rate"])
        self.bad(
            ~floating & np.isnan(rate) & ~self.bad_cells("rate"),
            self.located("rate", "index"),
            lambda i: "neither a rate nor an index is given",
            "give a fixed rate, or an index (and spread) for a floating loan",
        )
        for name in ("rate", "spread", "rate_floor"):
            v = col[name]
            self.bad(
                np.abs(v) >= 1,
                name,
                lambda i, v=v, name=name: f"{name} {v[i]:g} is not an annual rate as a decimal",
                "write 3.5% as 0.035 or '3.5%'",
            )
        for name, none in (("spread", 0.0), ("rate_floor", np.nan)):
            v = col[name]
            stray = given[name] & ~floating & ~np.isnan(v) & (v != 0)
            self.bad(
                stray,
                name,
                lambda i, name=name: f"{name} is given for a fixed-rate loan",
                "spread and rate_floor apply to floating loans (with an index)",
            )
            col[name] = np.where(floating, v, none)
        if floating.any():
            names = list(self.spec.indices)
            unknown = floating & ~pd.Series(index).isin(names).to_numpy()
            example = str(index[np.argmax(unknown)]) if unknown.any() else ""
            hint = suggest(example, names) or (
                "known indices: " + ", ".join(names) if names else "define it in the deal's `indices` section"
            )
            self.bad(unknown, "index", lambda i: f"unknown index {index[i]!r}", hint)

    def check_term(self, col: dict[str, np.ndarray]) -> None:
        """Exactly one of maturity_date and term_months, inside the deal's life."""
        mat, term = col["maturity_date"], col["term_months"]
        has_mat, has_term = ~np.isnat(mat), ~np.isnan(term)
        self.bad(
            has_mat & has_term,
            self.located("maturity_date", "term_months"),
            lambda i: f"both maturity_date ({_day(mat[i])}) and term_months ({term[i]:g}) are given",
            "give exactly one of them for each loan",
        )
        unread = self.bad_cells("maturity_date") | self.bad_cells("term_months")
        self.bad(
            ~has_mat & ~has_term & ~unread,
            self.located("maturity_date", "term_months"),
            lambda i: "neither maturity_date nor term_months is given",
            "give exactly one of them for each loan",
        )
        info = self.spec.deal
        close = np.datetime64(info.cut_off, "s")
        final = np.datetime64(info.legal_final_date, "s")
        when = "closing" if info.cut_off_date is None else "the cut-off date"
        self.bad(
            has_mat & (mat <= close),
            "maturity_date",
            lambda i: f"matures on {_day(mat[i])}, on or before {when} ({info.cut_off})",
            f"balances are as of {when}: drop matured loans",
        )
        self.bad(
            has_mat & (mat > final),
            "maturity_date",
            lambda i: f"matures on {_day(mat[i])}, after the legal final date ({info.legal_final_date})",
            "cash after legal final is not modelled: extend legal_final_date",
        )
        longest = _months_within(info.cut_off, info.legal_final_date)
        self.bad(
            has_term & (term < 1),
            "term_months",
            lambda i: f"term {term[i]:g} must be at least 1",
            f"give the remaining term in months from {when}",
        )
        self.bad(
            has_term & (term > longest),
            "term_months",
            lambda i: (
                f"a term of {term[i]:g} months runs past the legal final date "
                f"({info.legal_final_date}, {longest} months after {when})"
            ),
            "shorten the term or extend legal_final_date",
        )

    # ---- seasoned pools
    def check_seasoning(self, col: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> None:
        """Age or origination date, original balance and original term, consistent with the
        balance and remaining term at the cut-off."""
        from ipabs.calendars import months_to

        cut_off = self.spec.deal.cut_off
        age, orig = col["age_months"], col["origination_date"]
        self.bad(
            given["age_months"] & given["origination_date"],
            "age_months",
            lambda i: f"both age_months ({age[i]:g}) and origination_date ({_day(orig[i])}) are given",
            "give one of them for each loan",
        )
        self.bad(
            age < 0,
            "age_months",
            lambda i: f"age_months {age[i]:g} must not be negative",
            "give the whole months from origination to the cut-off date",
        )
        self.bad(
            ~np.isnat(orig) & (orig > np.datetime64(cut_off, "s")),
            "origination_date",
            lambda i: f"originated on {_day(orig[i])}, after the cut-off date ({cut_off})",
            "balances are as of the cut-off date: leave out loans made after it",
        )
        bal, ob = col["balance"], col["original_balance"]
        self.bad(
            ob < bal * (1 - 1e-12),
            "original_balance",
            lambda i: f"original_balance {ob[i]:,.2f} is below the balance {bal[i]:,.2f}",
            "give the principal at origination",
        )
        ot = col["original_term_months"]
        self.bad(
            ot < 1,
            "original_term_months",
            lambda i: f"original_term_months {ot[i]:g} must be at least 1",
            "give the term at origination in months",
        )
        unread = self.bad_cells("age_months") | self.bad_cells("origination_date")
        rows = np.flatnonzero(~np.isnan(ot) & (ot >= 1) & ~unread)
        if not len(rows):
            return
        ages = np.zeros(len(ot))
        remaining = np.full(len(ot), np.nan)
        for i in rows.tolist():
            o = None if np.isnat(orig[i]) else orig[i].astype("datetime64[D]").item()
            ages[i] = loan_age(None if o is not None else int(age[i]), o, cut_off)  # as the asset builder
            if not np.isnan(col["term_months"][i]):
                remaining[i] = col["term_months"][i]
            elif not np.isnat(col["maturity_date"][i]):
                remaining[i] = months_to(cut_off, col["maturity_date"][i].astype("datetime64[D]").item())
        self.bad(
            ~np.isnan(remaining) & (np.abs(ages + remaining - ot) > 0.5),
            "original_term_months",
            lambda i: (
                f"original_term_months {ot[i]:g} is not the age ({ages[i]:g}) plus the remaining "
                f"term ({remaining[i]:g} months from the cut-off date)"
            ),
            "check the age, the maturity or term, and the original term",
        )

    def located(self, first: str, second: str) -> str:
        """Of two fields, the one to report a joint problem at: the first with a column."""
        return (
            first if self.sources[first].header is not None or self.sources[second].header is None else second
        )

    def bad_cells(self, name: str) -> np.ndarray:
        """Rows whose cell for ``name`` was already reported as unreadable."""
        bad = self.unreadable.get(name)
        return np.zeros(len(self.rows), bool) if bad is None else bad

    def check_frame(self, frame: pd.DataFrame) -> None:
        """Checks across rows: unique ids, one set of attributes per obligor."""
        obligor, ids = frame["obligor"], frame["id"]
        blank_id = (ids == "").to_numpy()
        if blank_id.any():  # ids default to the obligor name, numbered when it repeats
            own = obligor[blank_id]
            nth = (own.groupby(own, sort=False).cumcount() + 1).astype(str)
            repeated = own.duplicated(keep=False) | own.isin(ids[~blank_id])
            frame.loc[blank_id, "id"] = own.where(~repeated, own + "#" + nth)
            ids = frame["id"]
        dup = (ids.duplicated(keep="first") & ~blank_id).to_numpy()
        if dup.any():
            first = {v: k for k, v in ids.drop_duplicates().items()}
            self.bad(
                dup,
                "id",
                lambda i: f"id {ids.iat[i]!r} repeats row {self.rows[first[ids.iat[i]]]}",
                "give each loan its own id",
            )

        # one industry / region / pd per obligor: each row must agree with the first row that
        # gives one for its obligor, or with the deal's `obligors` section
        codes, names = pd.factorize(obligor)
        declared = {o.name: o for o in self.spec.obligors}
        for attr in ("industry", "region", "pd"):
            if self.sources[attr].header is None:
                continue
            values = frame[attr]
            has = (values.notna() if attr == "pd" else values != "").to_numpy()
            rows = np.flatnonzero(has)
            _u, at = np.unique(codes[rows], return_index=True)
            first = np.full(len(names), -1)
            first[codes[rows[at]]] = rows[at]
            value_codes, _v = pd.factorize(values)
            ref = first[codes]
            conflict = has & (value_codes != value_codes[ref])
            fixed = {n: getattr(o, attr) for n, o in declared.items() if getattr(o, attr) is not None}
            for name, value in fixed.items():
                mine = has & (obligor == name).to_numpy()
                if mine.any():
                    conflict[mine] = (values[mine] != value).to_numpy()

            def problem(
                i: int,
                attr: str = attr,
                values: pd.Series = values,
                ref: np.ndarray = ref,
                fixed: dict[str, Any] = fixed,
            ) -> str:
                name = obligor.iat[i]
                where = (
                    f"{_show(fixed[name])} in the deal's `obligors` section"
                    if name in fixed
                    else f"{_show(values.iat[ref[i]])} in row {self.rows[ref[i]]}"
                )
                return f"obligor {name!r} has {attr} {_show(values.iat[i])} here but {where}"

            self.bad(conflict, attr, problem, "give one value per obligor")

    def check_guarantors(self, frame: pd.DataFrame, known: set[str]) -> None:
        """Guarantors must be obligors of the deal (any pool, tape or ``obligors`` section)."""
        guarantor = frame["guarantor"]
        codes, names = pd.factorize(guarantor)
        missing = [g != "" and g not in known and _NAME.match(g) is not None for g in names]
        unknown = np.array([*missing, False], dtype=bool)[codes]
        if unknown.any():
            example = str(guarantor.iat[int(np.argmax(unknown))])
            hint = suggest(example, sorted(known)) or "list guarantors in the deal's `obligors` section"
            self.bad(unknown, "guarantor", lambda i: f"unknown guarantor {guarantor.iat[i]!r}", hint)


class _Unreadable(Exception):
    """A tape file that cannot be read: (message, hint)."""


# --------------------------------------------------------------------------- helpers


def _invalid_names(values: np.ndarray) -> np.ndarray:
    """Rows whose non-blank name breaks the deal language's name rule."""
    codes, uniques = pd.factorize(values)
    bad = [u != "" and not _NAME.match(u) for u in uniques]
    return np.array([*bad, False], dtype=bool)[codes]


def _column(field: TapeField, values: np.ndarray) -> Any:
    """The frame column of a field: str, Int64 (term_months), int64 or the array itself."""
    if field.kind in ("text", "choice"):
        return pd.Series(values, dtype="str")
    if field.name in ("term_months", "original_term_months"):
        return pd.array(values, dtype="Int64")
    if field.kind == "int":
        return np.nan_to_num(values).astype("int64")
    return values


def _show(value: Any) -> str:
    """A cell value for a message: numbers plain, text quoted."""
    return f"{value:g}" if isinstance(value, (float, np.floating)) else repr(str(value))


def _missing(field: TapeField) -> Any:
    if field.kind == "date":
        return np.datetime64("NaT")
    if field.kind in ("text", "choice"):
        return ""
    return np.nan


def _blank_cells(raw: pd.Series) -> np.ndarray:
    return (_text(raw) == "").to_numpy()


def _display(path: Path) -> str:
    """The path relative to the working directory when below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _csv_header(text: str) -> tuple[int, list[str]]:
    """Line number and fields of the header: the first line that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""))
    for fields in reader:
        if any(f.strip() for f in fields):
            return reader.line_num, fields
    return 1, []


def _csv_shape_problem(text: str) -> tuple[int, int, str, str] | None:
    """(line, field, message, hint) of the first row whose number of fields differs from the
    header's, or of a quote that is never closed; None when the rows look well formed."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    width = None
    end = 0  # the last physical line read so far
    try:
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if width is None:
                width = len(fields)
            elif len(fields) > width:
                return (
                    start,
                    width + 1,
                    f"row {start} has {len(fields)} fields; the header has {width}",
                    "remove the extra fields, or quote a value that contains a comma",
                )
            elif len(fields) < width:
                return (
                    start,
                    len(fields),
                    f"row {start} has {len(fields)} fields; the header has {width}",
                    "add the missing fields (leave a cell blank with an empty field: a,,c)",
                )
    except csv.Error:
        start = end + 1
        lines = text.splitlines()
        line = lines[start - 1] if start <= len(lines) else ""
        opens = [i for i, ch in enumerate(line) if ch == '"' and (i == 0 or line[i - 1] == ",")]
        field = line[: opens[-1]].count(",") + 1 if opens else 1
        return (
            start,
            field,
            f"a quoted value opened in row {start} is not closed",
            'close the quote, or write a quote inside a quoted value as ""',
        )
    return None


def _csv_rows(data: bytes, n: int) -> np.ndarray:
    """Spreadsheet row numbers of the ``n`` data rows (the CSV reader skips empty lines)."""
    if b"\n\n" not in data and b"\n\r\n" not in data:
        return np.arange(2, n + 2, dtype=np.int64)
    lines = data.split(b"\n")
    filled = [i + 1 for i, line in enumerate(lines) if line.strip(b"\r\xef\xbb\xbf \t")]
    rows = np.asarray(filled[1 : n + 1], dtype=np.int64)
    if len(rows) < n:  # quoted line breaks: fall back to counting rows
        return np.arange(2, n + 2, dtype=np.int64)
    return rows


def _column_letter(position: int) -> str:
    out = ""
    while position:
        position, rem = divmod(position - 1, 26)
        out = chr(65 + rem) + out
    return out


def _day(value: np.datetime64) -> str:
    return str(value.astype("datetime64[D]"))


def _months_within(start: dt.date, end: dt.date) -> int:
    """Largest number of months m with start + m months on or before ``end``."""
    from ipabs.dates import add_months

    m = (end.year - start.year) * 12 + end.month - start.month + 1
    while m > 0 and add_months(start, m) > end:
        m -= 1
    return m
