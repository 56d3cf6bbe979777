"""Discount-curve files: schema, YAML and CSV reading, located errors.

A curve file lists zero rates by tenor (years from the settlement date, ``2`` or ``"6m"``/``"2y"``)
or by date, e.g. a government bond curve. It is read like every other input: YAML (or CSV turned
into the same data with a :class:`~ipabs.deal.source.SourceMap`) is validated by
:class:`CurveFile` and pydantic's errors are translated into located issues by
:func:`ipabs.deal.validate.translate`; the rules between points (all tenors or all dates,
strictly increasing) are then checked with the positions the source map keeps.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator

from ipabs.deal.base import Model
from ipabs.deal.source import SourceMap, read_text
from ipabs.deal.types import Date, _finite, parse_percent
from ipabs.errors import DealError, Issue, format_path

_TENOR = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([dwmyDWMY])\s*$")
_UNIT_YEARS = {"d": 1 / 365.0, "w": 7 / 365.0, "m": 1 / 12.0, "y": 1.0}


def _tenor(value: Any) -> Any:
    """``2``, ``0.5``, ``"6m"``, ``"2y"``, ``"13w"``, ``"30d"`` as years."""
    if isinstance(value, bool):
        raise ValueError("must be a tenor in years, not true/false")
    if isinstance(value, str):
        m = _TENOR.match(value)
        if m:
            return float(m.group(1)) * _UNIT_YEARS[m.group(2).lower()]
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a tenor: write years (2, 0.5) or e.g. '6m', '2y'") from None
    return value


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("a tenor must not be negative")
    return value


def _rate(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a rate, not true/false")
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("the rate is missing: write a number, e.g. 0.025 or '2.5%'")
        return parse_percent(value)
    return value


def _above_minus_one(value: float) -> float:
    if value <= -1.0:
        raise ValueError("a zero rate must be above -100%")
    return value


Tenor = Annotated[float, BeforeValidator(_tenor), AfterValidator(_finite), AfterValidator(_non_negative)]
"""Years from the settlement date: a number, or text such as ``"6m"`` or ``"2y"``."""

ZeroRate = Annotated[float, BeforeValidator(_rate), AfterValidator(_finite), AfterValidator(_above_minus_one)]
"""An annual effective zero rate, ``0.025`` or ``"2.5%"``."""


class CurvePoint(Model):
    """One point of a curve: a tenor or a date, and the zero rate to it."""

    tenor: Tenor | None = Field(None, description="Years from the settlement date (2, 0.5, '6m', '2y').")
    date: Date | None = Field(None, description="Date of the point (YYYY-MM-DD).")
    rate: ZeroRate = Field(description="Annual effective zero rate to the tenor or date.")

    @model_validator(mode="after")
    def _one_place(self) -> CurvePoint:
        if (self.tenor is None) == (self.date is None):
            raise ValueError("give exactly one of `tenor` or `date` for each point")
        return self


class CurveFile(Model):
    """A discount-curve file (YAML; a CSV curve is read into the same fields)."""

    name: str | None = Field(None, description="Short name of the curve (default: the file name).")
    points: list[CurvePoint] = Field(min_length=1, description="The points, in increasing tenor or date.")


@dataclass(frozen=True)
class CurveSpec:
    """A validated curve file.

    Attributes
    ----------
    name : str
    tenors : tuple of float or None
        Years from the settlement date of each point (when the file gives tenors).
    dates : tuple of date or None
        Date of each point (when the file gives dates).
    rates : tuple of float
        Annual effective zero rates.
    source : str
        The file it was read from.
    """

    name: str
    tenors: tuple[float, ...] | None
    dates: tuple[dt.date, ...] | None
    rates: tuple[float, ...]
    source: str


def load_curve(path: str | Path) -> CurveSpec:
    """Read a discount-curve file (``.yaml``/``.yml`` or ``.csv``; formats in ``docs/pricing.md``).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    CurveSpec

    Raises
    ------
    DealError
        Every problem located as ``file:line:column: field: message``: a missing or bad rate,
        a point with both or neither of tenor and date, tenors mixed with dates, tenors or
        dates not strictly increasing (unsorted or duplicated).
    """
    from ipabs.deal.source import read_yaml

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        data, smap, labels = _csv_data(read_text(p, str(path), "a curve file"), str(path))
    elif suffix in (".yaml", ".yml"):
        data, smap = read_yaml(p)
        labels = {}
    else:
        raise DealError(
            [
                Issue(
                    str(path),
                    0,
                    0,
                    "",
                    f"unsupported curve file type {suffix or '(none)'!r}",
                    "give a .yaml, .yml or .csv file",
                )
            ]
        )
    return parse_curve(data, smap, labels)


def parse_curve(data: Any, smap: SourceMap, labels: dict[str, str] | None = None) -> CurveSpec:
    """Validate curve data (from YAML, or CSV laid out as the YAML) into a :class:`CurveSpec`.

    ``labels`` renames field paths in messages (a CSV curve names columns, not YAML keys).
    """
    from ipabs.deal.validate import translate

    names = labels or {}
    file = smap.file
    if not isinstance(data, dict):
        raise DealError(
            [
                Issue(
                    file,
                    1,
                    1,
                    "",
                    "a curve file is a mapping",
                    "write `points:` with a list of {tenor, rate}",
                )
            ]
        )
    try:
        spec = CurveFile.model_validate(data)
    except ValidationError as exc:
        issues = translate(exc, data, smap, CurveFile)
        raise DealError([_relabel(i, names) for i in issues]) from None

    issues: list[Issue] = []

    def add(i: int, key: str, message: str, hint: str) -> None:
        path = ("points", i, key)
        line, col = smap.locate(path)
        text = format_path(path)
        issues.append(Issue(file, line, col, names.get(text, text), message, hint))

    pts = spec.points
    kind = "tenor" if pts[0].tenor is not None else "date"
    for i, pt in enumerate(pts):
        if (pt.tenor is not None) != (kind == "tenor"):
            add(
                i,
                "tenor" if pt.tenor is not None else "date",
                f"the first point gives a {kind}: tenors and dates are mixed",
                f"give every point a {kind}",
            )
    if not issues:
        keys = [pt.tenor if kind == "tenor" else pt.date for pt in pts]
        for i in range(1, len(keys)):
            if keys[i] == keys[i - 1]:
                add(i, kind, f"duplicate {kind} {_show(keys[i])}", f"give each {kind} once")
            elif keys[i] < keys[i - 1]:  # type: ignore[operator]
                add(
                    i,
                    kind,
                    f"{kind} {_show(keys[i])} comes after {_show(keys[i - 1])}: the points are not sorted",
                    f"list the points in increasing {kind}",
                )
    if issues:
        raise DealError(issues)
    return CurveSpec(
        name=spec.name or Path(file).name,
        tenors=tuple(float(pt.tenor) for pt in pts) if kind == "tenor" else None,  # type: ignore[arg-type]
        dates=tuple(pt.date for pt in pts) if kind == "date" else None,  # type: ignore[misc]
        rates=tuple(pt.rate for pt in pts),
        source=file,
    )


def _show(key: Any) -> str:
    return key.isoformat() if isinstance(key, dt.date) else f"{key:g}"


def _relabel(issue: Issue, names: dict[str, str]) -> Issue:
    from dataclasses import replace

    return replace(issue, path=names.get(issue.path, issue.path)) if issue.path in names else issue


def _column(line: str, c: int) -> int:
    """1-based column where cell ``c`` of a CSV line starts (cells without quoted commas)."""
    col = 1
    for _ in range(c):
        k = line.find(",", col - 1)
        if k < 0:
            return col
        col = k + 2
    return col


def _csv_data(text: str, file: str) -> tuple[dict[str, Any], SourceMap, dict[str, str]]:
    """A CSV curve (optional ``# name: ...`` line, a header ``tenor,rate`` or ``date,rate``, one
    row per point) laid out as the YAML file, with the place of every value."""
    smap = SourceMap(file)
    smap.values[()] = (1, 1)
    data: dict[str, Any] = {}
    labels: dict[str, str] = {}
    issues: list[Issue] = []
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            m = re.match(r"#\s*name\s*:\s*(.*)$", stripped)
            if m:
                data["name"] = m.group(1).strip()
                smap.values[("name",)] = (number, 1)
        elif stripped:
            lines.append((number, line))
    if not lines:
        raise DealError([Issue(file, 1, 1, "", "no header row", "start with `tenor,rate` or `date,rate`")])
    header_line, header_text = lines[0]
    header = [c.strip().lower() for c in next(csv.reader([header_text]))]
    if sorted(header) not in (["rate", "tenor"], ["date", "rate"]):
        raise DealError(
            [
                Issue(
                    file,
                    header_line,
                    1,
                    "",
                    f"header {header_text.strip()!r} is not a curve header",
                    "give two columns: `tenor,rate` (tenor in years or e.g. 6m, 2y) or `date,rate`",
                )
            ]
        )
    smap.values[("points",)] = (header_line, 1)
    labels["points"] = ""
    points = []
    for number, line in lines[1:]:
        cells = next(csv.reader([line]))
        i = len(points)
        if len(cells) != 2:
            issues.append(
                Issue(
                    file,
                    number,
                    1,
                    f"row {number}",
                    f"{len(cells)} cells for 2 columns",
                    "give a tenor or date and a rate",
                )
            )
            points.append({})
            continue
        point = {}
        smap.values[("points", i)] = (number, 1)
        labels[format_path(("points", i))] = f"row {number}"
        for c, name in enumerate(header):
            path = ("points", i, name)
            smap.values[path] = (number, _column(line, c))
            labels[format_path(path)] = f"row {number} column {name!r}"
            point[name] = cells[c].strip()
        points.append(point)
    if issues:
        raise DealError(issues)
    data["points"] = points
    return data, smap, labels
