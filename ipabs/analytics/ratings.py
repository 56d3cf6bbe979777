"""Rating tables: default-probability and expected-loss thresholds per rating and horizon.

A rating table is data. ipabs ships a documented default (``ipabs/data/ratings/default.yaml``:
Moody's idealized 10-year default probabilities, the WARF rating factors / 10,000) and reads
user tables from YAML or CSV files (see ``docs/ratings.md``). Files are read as every input is:
the values through the schema of :mod:`ipabs.deal.ratingtable` with the deal language's
located-error translation (a CSV table laid out as the YAML fields, each value keeping its
line and column), then the rules between values (order, ranges, monotone probabilities),
located with the same positions.

Every table is held as a grid: for each rating, the cumulative default probability at one or
more horizons (a table of one 10-year probability per rating is a grid of one column). Between
horizons the survival probability ``1 - PD`` is interpolated linearly in its logarithm (a
constant hazard between grid points, starting from survival 1 at time 0); horizons shorter than
``min_horizon_years`` use that horizon, horizons beyond the last grid point use the last.
Expected loss is an explicit grid interpolated the same way, or default probability x severity.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import functools
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipabs.errors import DealError, IpabsError, Issue, format_path

if TYPE_CHECKING:
    from ipabs.deal.source import SourceMap

DEFAULT_SOURCE = "ipabs/data/ratings/default.yaml"
"""How the shipped table is named in messages and in :attr:`RatingTable.source`."""

DEFAULT_MIN_HORIZON_YEARS = 0.25
DEFAULT_HORIZON_YEARS = 10.0

# Published rating scales, best first: a table whose names all come from one of them must list
# them in this order (catches a table pasted out of order even when its numbers are monotone).
_SCALES = {
    "Moody's": "Aaa Aa1 Aa2 Aa3 A1 A2 A3 Baa1 Baa2 Baa3 Ba1 Ba2 Ba3 B1 B2 B3 Caa1 Caa2 Caa3 Ca C".split(),
    "S&P": "AAA AA+ AA AA- A+ A A- BBB+ BBB BBB- BB+ BB BB- B+ B B- CCC+ CCC CCC- CC C D".split(),
}

_CSV_META = ("name", "provenance", "severity", "horizon_years", "min_horizon_years")


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class RatingTable:
    """Default-probability and expected-loss thresholds per rating, by horizon.

    Build one with :func:`load_rating_table`; direct construction validates the same rules
    (and raises :class:`~ipabs.errors.DealError` naming the field).

    Attributes
    ----------
    name : str
        Short name of the table.
    provenance : str
        Where the numbers come from, the horizon rule and the severity assumption.
    ratings : tuple of str
        Canonical rating names, best first.
    horizons : tuple of float
        Grid horizons in years, increasing.
    default_probabilities : tuple of tuple of float
        ``default_probabilities[i][j]``: cumulative default probability of ``ratings[i]`` by
        ``horizons[j]``.
    severity : float or None
        Loss given default; expected loss = default probability x severity. None when the
        table gives ``expected_losses``.
    expected_losses : tuple of tuple of float or None
        Explicit expected-loss grid, laid out as ``default_probabilities``.
    aliases : tuple of tuple of str
        Other names accepted for each rating (e.g. ``AAA`` for ``Aaa``); empty or one tuple
        per rating.
    min_horizon_years : float
        Horizons below this use it.
    source : str
        The file the table was read from.
    """

    name: str
    provenance: str
    ratings: tuple[str, ...]
    horizons: tuple[float, ...]
    default_probabilities: tuple[tuple[float, ...], ...]
    severity: float | None = None
    expected_losses: tuple[tuple[float, ...], ...] | None = None
    aliases: tuple[tuple[str, ...], ...] = ()
    min_horizon_years: float = DEFAULT_MIN_HORIZON_YEARS
    source: str = "<RatingTable>"
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        draft = _draft_of(self)
        issues = _check(draft)
        if issues:
            raise DealError(issues)
        # hold plain tuples of str and float whatever sequences (lists, arrays) were given
        normal = _fields_of(draft)
        for key in ("ratings", "horizons", "default_probabilities", "expected_losses", "aliases"):
            object.__setattr__(self, key, normal[key])
        for key in ("severity", "min_horizon_years"):
            object.__setattr__(self, key, draft.meta[key][0])
        lookup: dict[str, int] = {}
        for i, rating in enumerate(self.ratings):
            lookup[rating] = i
            for alias in self.aliases[i] if self.aliases else ():
                lookup[alias] = i
        object.__setattr__(self, "_lookup", lookup)

    # ------------------------------------------------------------------ names

    def canonical(self, rating: str) -> str:
        """The table's name for ``rating`` (a name or an alias; symbols are case-sensitive).

        Raises
        ------
        IpabsError
            For a name the table does not know; the message lists the known ones.
        """
        return self.ratings[self._index(rating)]

    def _index(self, rating: str) -> int:
        index = self._lookup.get(rating) if isinstance(rating, str) else None
        if index is None:
            known = ", ".join(
                f"{r} ({'/'.join(a)})" if a else r
                for r, a in zip(self.ratings, self.aliases or [()] * len(self.ratings), strict=True)
            )
            hint = _did_you_mean(rating, self._lookup)
            raise IpabsError(
                f"unknown rating {rating!r} in rating table {self.name!r}{hint}; "
                f"known ratings, best first: {known}"
            )
        return index

    # ------------------------------------------------------------------ thresholds

    @property
    def horizon_rule(self) -> str:
        """How the probability at any horizon follows from the grid, in words."""
        lo, hi = self.min_horizon_years, self.horizons[-1]
        clamp = f"horizons below {_years(lo)} use {_years(lo)}, beyond {_years(hi)} use {_years(hi)}"
        if len(self.horizons) == 1:
            return f"constant hazard: PD(h) = 1 - (1 - PD({hi:g}))^(h/{hi:g}); {clamp}"
        grid = ", ".join(f"{h:g}" for h in self.horizons)
        return (
            f"cumulative default probabilities given at {grid} years; in between (from no default at "
            f"0 years) survival is interpolated linearly in its logarithm, a constant hazard between "
            f"grid points; {clamp}"
        )

    def horizon_used(self, horizon_years: float) -> float:
        """The horizon the table is read at for ``horizon_years``: clamped to
        ``[min_horizon_years, last grid horizon]``.

        Raises
        ------
        IpabsError
            When ``horizon_years`` is not a finite number >= 0.
        """
        if isinstance(horizon_years, bool) or not isinstance(horizon_years, Real):
            raise IpabsError(f"horizon_years must be a number of years, got {horizon_years!r}")
        h = float(horizon_years)
        if not math.isfinite(h) or h < 0:
            raise IpabsError(f"horizon_years must be a finite number of years >= 0, got {h!r}")
        return min(max(h, self.min_horizon_years), self.horizons[-1])

    def default_probability(self, rating: str, horizon_years: float) -> float:
        """Cumulative default probability threshold of ``rating`` by ``horizon_years``.

        Parameters
        ----------
        rating : str
            A rating name or alias.
        horizon_years : float
            Horizon in years (e.g. a tranche's WAL); clamped as in :meth:`horizon_used`.

        Returns
        -------
        float
        """
        return _interpolate(
            self.horizons, self.default_probabilities[self._index(rating)], self.horizon_used(horizon_years)
        )

    def expected_loss(self, rating: str, horizon_years: float) -> float:
        """Expected-loss threshold (a fraction of the balance) of ``rating`` by ``horizon_years``:
        the explicit grid, or :meth:`default_probability` x severity."""
        i = self._index(rating)
        h = self.horizon_used(horizon_years)
        if self.expected_losses is not None:
            return _interpolate(self.horizons, self.expected_losses[i], h)
        assert self.severity is not None  # validated: one of the two is given
        return _interpolate(self.horizons, self.default_probabilities[i], h) * self.severity

    def _thresholds(self, metric: str, horizon_years: float) -> list[float]:
        h = self.horizon_used(horizon_years)
        if metric == "pd":
            return [_interpolate(self.horizons, row, h) for row in self.default_probabilities]
        return [self.expected_loss(r, h) for r in self.ratings]

    def rating_for_default_probability(self, pd: float, horizon_years: float) -> str | None:
        """The best rating whose default-probability threshold at ``horizon_years`` is >= ``pd``.

        A probability exactly equal to a threshold meets it. Returns None when ``pd`` is worse
        than the last rating's threshold, or is nan (an undefined metric gets no rating).
        """
        return self._best(self._thresholds("pd", horizon_years), pd)

    def rating_for_expected_loss(self, el: float, horizon_years: float) -> str | None:
        """The best rating whose expected-loss threshold at ``horizon_years`` is >= ``el``.

        Same rules as :meth:`rating_for_default_probability` (ties meet; worse than the last,
        or nan, gives None).
        """
        return self._best(self._thresholds("el", horizon_years), el)

    def _best(self, thresholds: list[float], metric: float) -> str | None:
        value = float(metric)
        if math.isnan(value):
            return None
        for rating, threshold in zip(self.ratings, thresholds, strict=True):
            if value <= threshold:
                return rating
        return None

    # ------------------------------------------------------------------ output

    def to_frame(self, horizons: Sequence[float] = (1, 2, 3, 5, 7, 10)) -> Any:
        """The table for display: one row per rating (index ``rating``), an ``aliases`` column,
        then ``pd_<h>y`` and ``el_<h>y`` per horizon (fractions, not percent).

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        hs = [float(h) for h in horizons]
        data: dict[str, list[Any]] = {"aliases": [" ".join(a) for a in self._aliases()]}
        for h in hs:
            data[f"pd_{h:g}y"] = [self.default_probability(r, h) for r in self.ratings]
        for h in hs:
            data[f"el_{h:g}y"] = [self.expected_loss(r, h) for r in self.ratings]
        return pd.DataFrame(data, index=pd.Index(self.ratings, name="rating"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: the fields of a YAML rating table (grid form, horizons as
        string keys) plus ``source`` and ``horizon_rule``."""
        rows = []
        for i, rating in enumerate(self.ratings):
            row: dict[str, Any] = {
                "rating": rating,
                "aliases": list(self._aliases()[i]),
                "default_probability": _by_horizon(self.horizons, self.default_probabilities[i]),
            }
            if self.expected_losses is not None:
                row["expected_loss"] = _by_horizon(self.horizons, self.expected_losses[i])
            rows.append(row)
        out: dict[str, Any] = {"name": self.name, "provenance": self.provenance, "source": self.source}
        if self.severity is not None:
            out["severity"] = self.severity
        out["min_horizon_years"] = self.min_horizon_years
        out["horizon_rule"] = self.horizon_rule
        out["ratings"] = rows
        return out

    def _aliases(self) -> tuple[tuple[str, ...], ...]:
        return self.aliases or tuple(() for _ in self.ratings)


def rank(table: RatingTable, rating: str) -> int:
    """Position of ``rating`` (a name or alias) in ``table``: 0 for the best.

    Raises
    ------
    IpabsError
        For a rating the table does not know.
    """
    return table._index(rating)


def _by_horizon(horizons: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    return {f"{h:g}": v for h, v in zip(horizons, values, strict=True)}


def _interpolate(horizons: Sequence[float], values: Sequence[float], h: float) -> float:
    """Cumulative probability at ``h`` (already clamped): survival is log-linear between grid
    points, starting from survival 1 at time 0. Grid values are returned as given, so a table
    reproduces its own numbers exactly."""
    for j, hj in enumerate(horizons):
        if h == hj:
            return values[j]
        if h < hj:
            h0, s0 = (0.0, 1.0) if j == 0 else (horizons[j - 1], 1.0 - values[j - 1])
            w = (h - h0) / (hj - h0)
            # powers rather than logarithms: a probability of 1 (survival 0) stays exact
            return 1.0 - s0 ** (1.0 - w) * (1.0 - values[j]) ** w
    return values[-1]


def _years(h: float) -> str:
    return f"{h:g} year" if h == 1 else f"{h:g} years"


def _did_you_mean(word: Any, options: Sequence[str] | dict[str, Any]) -> str:
    names = list(options)
    text = str(word)
    folded = [n for n in names if n.lower() == text.lower()]
    match = folded or difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _At:
    """Where a value was written: line and column (1-based; 0 when unknown) and a field path."""

    line: int
    column: int
    path: str


# one cell of a table as read: (horizon in years, value, where the value is)
_Cell = tuple[float, float, _At]


@dataclass
class _Row:
    rating: str
    at: _At
    aliases: list[tuple[str, _At]]
    pd: list[_Cell] = field(default_factory=list)
    el: list[_Cell] | None = None


@dataclass
class _Draft:
    """A table as read, every value with its place, before the semantic checks.

    ``meta`` maps ``name``, ``provenance``, ``severity`` (None when absent) and
    ``min_horizon_years`` to (value, where); ``horizons`` are the grid horizons with where each
    is named."""

    file: str
    meta: dict[str, tuple[Any, _At]]
    horizons: list[tuple[float, _At]]
    rows: list[_Row]
    ratings_at: _At


class _Problems:
    """Collects located problems; raised together as one :class:`DealError`."""

    def __init__(self, file: str):
        self.file = file
        self.issues: list[Issue] = []

    def add(self, at: _At, message: str, hint: str = "") -> None:
        self.issues.append(Issue(self.file, at.line, at.column, at.path, message, hint))

    def raise_if_any(self) -> None:
        if self.issues:
            raise DealError(self.issues)

    def number(self, value: Any, at: _At, what: str) -> float:
        """A finite number, written ``0.02`` or ``"2%"``; nan after an issue otherwise."""
        out = math.nan
        if (isinstance(value, Real) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip()
        ):
            from ipabs.deal.types import parse_percent  # pydantic: not at import time

            with contextlib.suppress(ValueError):
                out = float(parse_percent(value))  # the deal language's "2%" rule
        if not math.isfinite(out):
            self.add(at, f"{what} must be a finite number, got {_show(value)}", "write e.g. 0.02 or '2%'")
        return out

    def text(self, value: Any, at: _At, what: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.add(at, f"{what} must be text, got {_show(value)}")
            return ""
        return str(value)


def _show(value: Any) -> str:
    if value is None or value == "":
        return "an empty value"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _draft_of(table: RatingTable) -> _Draft:
    """The draft of a directly constructed table, located by attribute path."""

    def at(*path: Any) -> _At:
        return _At(0, 0, format_path(path))

    p = _Problems(table.source)
    n = len(table.ratings)
    hs = [p.number(h, at("horizons", j), "a horizon") for j, h in enumerate(table.horizons)]
    if table.aliases and len(table.aliases) != n:
        p.add(at("aliases"), f"has {len(table.aliases)} entries for {n} ratings")
    grids = {"default_probabilities": table.default_probabilities, "expected_losses": table.expected_losses}
    for label, grid in grids.items():
        if grid is not None and (len(grid) != n or any(len(row) != len(hs) for row in grid)):
            p.add(at(label), f"must hold one row per rating ({n}) of one value per horizon ({len(hs)})")
    if table.severity is None and table.expected_losses is None:
        p.add(at("severity"), "give a severity or expected_losses")
    p.raise_if_any()

    def cells(label: str, row: Sequence[Any], i: int) -> list[_Cell]:
        return [
            (h, p.number(v, at(label, i, j), label), at(label, i, j))
            for j, (h, v) in enumerate(zip(hs, row, strict=True))
        ]

    rows = []
    for i, rating in enumerate(table.ratings):
        aliases = [
            (p.text(a, at("aliases", i, k), "alias"), at("aliases", i, k))
            for k, a in enumerate(table.aliases[i] if table.aliases else ())
        ]
        row = _Row(
            p.text(rating, at("ratings", i), "rating"),
            at("ratings", i),
            aliases,
            cells("default_probabilities", table.default_probabilities[i], i),
        )
        if table.expected_losses is not None:
            row.el = cells("expected_losses", table.expected_losses[i], i)
        rows.append(row)
    meta: dict[str, tuple[Any, _At]] = {key: (getattr(table, key), at(key)) for key in ("name", "provenance")}
    for key in ("severity", "min_horizon_years"):
        value = getattr(table, key)
        meta[key] = (None if value is None else p.number(value, at(key), key), at(key))
    p.raise_if_any()
    return _Draft(table.source, meta, [(h, at("horizons", j)) for j, h in enumerate(hs)], rows, at("ratings"))


def _check(d: _Draft) -> list[Issue]:
    """Every semantic problem of a table: names, ranges, order and monotonicity."""
    p = _Problems(d.file)
    for key in ("name", "provenance"):
        value, at = d.meta[key]
        if not isinstance(value, str) or not value.strip():
            p.add(at, f"the table needs a {key}", "say what the table is and where its numbers come from")
    severity, at = d.meta["severity"]
    if severity is not None and not (0.0 < severity <= 1.0):
        p.add(at, f"severity {severity:g} must lie in (0, 1]", "a loss given default, e.g. 0.55")
    for h, at in d.horizons:
        if not (math.isfinite(h) and h > 0):
            p.add(at, f"horizon {h:g} must be a positive number of years")
    for (h0, _), (h1, at) in itertools.pairwise(d.horizons):
        if not h1 > h0:
            p.add(at, f"horizons must increase: {h1:g} follows {h0:g}", "give each horizon once")
    last = max((h for h, _ in d.horizons if math.isfinite(h)), default=0.0)
    low, at = d.meta["min_horizon_years"]
    if not (math.isfinite(low) and 0.0 < low <= last):
        p.add(at, f"min_horizon_years {low:g} must be positive and at most the longest horizon, {last:g}")
    if not d.rows:
        p.add(d.ratings_at, "the table has no ratings", "list the ratings, best first")
    _check_names(p, d.rows)
    _check_grid(p, d.rows, "default probability", lambda row: row.pd)
    if all(row.el is not None for row in d.rows):
        _check_grid(p, d.rows, "expected loss", lambda row: row.el or [])
        for row in d.rows:
            for (h, pd_, _), (_, el, at) in zip(row.pd, row.el or [], strict=True):
                if el > pd_:
                    p.add(
                        at,
                        f"expected loss {el:g} of {row.rating!r} at {_years(h)} exceeds its default "
                        f"probability {pd_:g}",
                    )
    return p.issues


def _check_names(p: _Problems, rows: list[_Row]) -> None:
    """Names are plain and unique (aliases included) and, on a published scale, best first."""
    owner: dict[str, tuple[str, _At]] = {}
    for row in rows:
        for name, at, alias in [(row.rating, row.at, False), *((a, w, True) for a, w in row.aliases)]:
            if not name or re.search(r"[\s,]", name):
                p.add(at, f"rating name {name!r} must be non-empty, without spaces or commas")
            elif name in owner and not (alias and owner[name][0] == row.rating):
                first = owner[name][1]
                where = f"{first.path}, line {first.line}" if first.line else first.path
                p.add(
                    at,
                    f"duplicate rating name {name!r} (first at {where})",
                    "give each rating and alias once",
                )
            else:
                owner.setdefault(name, (row.rating, at))
    names = [row.rating for row in rows]
    for scale_name, scale in _SCALES.items():
        if names and all(n in scale for n in names):
            for prev, row in itertools.pairwise(rows):
                if scale.index(row.rating) < scale.index(prev.rating):
                    p.add(
                        row.at,
                        f"ratings must be ordered best first: {row.rating!r} follows {prev.rating!r} but "
                        f"ranks above it on the {scale_name} scale",
                        "list the ratings from best to worst",
                    )
            return


def _check_grid(p: _Problems, rows: list[_Row], label: str, cells_of: Callable[[_Row], list[_Cell]]) -> None:
    """Probabilities lie in [0, 1] and never fall with the horizon or to a worse rating."""
    out_of_range = False
    for row in rows:
        for h, v, at in cells_of(row):
            if not 0.0 <= v <= 1.0:
                out_of_range = True
                p.add(at, f"{label} {v:g} of {row.rating!r} at {_years(h)} must lie in [0, 1]")
    if out_of_range:  # the order checks would only repeat the same cells
        return
    for row in rows:
        cells = cells_of(row)
        for (h0, v0, _), (h1, v1, at) in itertools.pairwise(cells):
            if v1 < v0:
                p.add(
                    at,
                    f"{label} of {row.rating!r} falls with the horizon: {v1:g} at {_years(h1)} < {v0:g} "
                    f"at {_years(h0)}",
                    "cumulative probabilities cannot decrease",
                )
    for prev, row in itertools.pairwise(rows):
        for (h, a, _), (_, b, at) in zip(cells_of(prev), cells_of(row), strict=True):
            if b < a:
                p.add(
                    at,
                    f"{label} of {row.rating!r} at {_years(h)} ({b:g}) is below that of the better "
                    f"rating {prev.rating!r} ({a:g})",
                    "list the ratings best first, with numbers that do not fall down the list",
                )


# --------------------------------------------------------------------------- reading files


def load_rating_table(source: str | Path | RatingTable | None = None) -> RatingTable:
    """Read a rating table.

    Parameters
    ----------
    source : str, Path, RatingTable or None
        None for the shipped default table; a ``.yaml``/``.yml`` or ``.csv`` file (formats in
        ``docs/ratings.md``); a :class:`RatingTable` is returned as is.

    Returns
    -------
    RatingTable

    Raises
    ------
    DealError
        For a file that cannot be read or breaks a rule, with every problem located as
        ``file:line:column: field: message``.

    Examples
    --------
    >>> table = load_rating_table()
    >>> table.canonical("AA-")
    'Aa3'
    >>> table.default_probability("Baa2", 10)
    0.036
    """
    if source is None:
        return _default_table()
    if isinstance(source, RatingTable):
        return source
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise DealError(
            [
                Issue(
                    str(source),
                    0,
                    0,
                    "",
                    f"unsupported rating table file type {suffix or '(none)'!r}",
                    "give a .yaml, .yml or .csv file",
                )
            ]
        )
    from ipabs.deal.source import read_text, read_yaml

    if suffix == ".csv":
        data, smap, labels = _csv_data(read_text(path, str(source), "a rating table"), str(source))
        return _finish(_from_data(data, smap, labels))

    return _finish(_from_data(*read_yaml(path)))


@functools.lru_cache(maxsize=1)
def _default_table() -> RatingTable:
    from ipabs.deal.source import parse_yaml

    text = resources.files("ipabs.data").joinpath("ratings/default.yaml").read_text(encoding="utf-8")
    return _finish(_from_data(*parse_yaml(text, DEFAULT_SOURCE)))


def _finish(d: _Draft) -> RatingTable:
    """Check a draft (every problem located in its file) and build the table."""
    issues = _check(d)
    if issues:
        raise DealError(issues)
    return RatingTable(
        name=d.meta["name"][0].strip(),
        provenance=" ".join(d.meta["provenance"][0].split()),
        severity=d.meta["severity"][0],
        min_horizon_years=d.meta["min_horizon_years"][0],
        source=d.file,
        **_fields_of(d),
    )


def _fields_of(d: _Draft) -> dict[str, Any]:
    """The grid fields of a :class:`RatingTable` from a checked draft, as tuples."""
    has_el = all(row.el is not None for row in d.rows)
    aliases = tuple(tuple(dict.fromkeys(a for a, _ in row.aliases if a != row.rating)) for row in d.rows)
    return {
        "ratings": tuple(row.rating for row in d.rows),
        "horizons": tuple(h for h, _ in d.horizons),
        "default_probabilities": tuple(tuple(v for _, v, _ in row.pd) for row in d.rows),
        "expected_losses": tuple(tuple(v for _, v, _ in row.el or []) for row in d.rows) if has_el else None,
        "aliases": aliases if any(aliases) else (),
    }


def _loss_basis(p: _Problems, rows: list[_Row], severity: float | None, at: _At, where: str) -> None:
    """Expected loss comes from a severity or from an expected loss per rating: exactly one."""
    given = sum(row.el is not None for row in rows)
    if given and given != len(rows):
        p.add(
            at, f"expected loss must be given for every rating or for none ({given} of {len(rows)} have it)"
        )
    elif given and severity is not None:
        p.add(at, f"give either a severity or expected losses, not both{where}")
    elif not given and severity is None:
        p.add(
            at,
            f"no severity{where}",
            "expected loss = default probability x severity; or give expected losses",
        )


def _same_horizons(p: _Problems, rows: list[_Row], horizons: list[float]) -> None:
    for row in rows:
        for cells in (row.pd, row.el or []):
            got = [h for h, _, _ in cells]
            if got and got != horizons:
                p.add(
                    cells[0][2],
                    f"horizons of {row.rating!r} ({', '.join(f'{h:g}' for h in got)}) differ from those of "
                    f"the first rating ({', '.join(f'{h:g}' for h in horizons)})",
                    "give every rating the same horizons",
                )


# ------------------------------------------------------------------ one reader for YAML and CSV


def _from_data(data: Any, smap: SourceMap, labels: dict[str, str] | None = None) -> _Draft:
    """Validate a table's data (from YAML, or from CSV laid out as the YAML) with the schema of
    :mod:`ipabs.deal.ratingtable` and the deal language's located-error translation, then read
    it into a draft: every value with its place. ``labels`` renames field paths in messages
    (a CSV table names columns, not YAML keys)."""
    from pydantic import ValidationError

    from ipabs.deal.ratingtable import RatingTableFile
    from ipabs.deal.validate import translate

    file = smap.file
    names = labels or {}
    p = _Problems(file)

    def at(*path: Any, key: bool = False) -> _At:
        line, col = smap.locate(path, key=key)
        text = format_path(path)
        return _At(line, col, names.get(text, text))

    if not isinstance(data, dict):
        p.add(at(), "a rating table file must be a mapping", "start with `name:`, `provenance:`, `ratings:`")
        p.raise_if_any()
    _horizon_keys_as_text(data, smap)
    try:
        spec = RatingTableFile.model_validate(data)
    except ValidationError as exc:
        issues = translate(exc, data, smap, RatingTableFile)
        raise DealError([dataclasses.replace(x, path=names.get(x.path, x.path)) for x in issues]) from None

    # the first rating fixes the shape: one probability (at horizon_years) or a grid of horizons
    entries = spec.ratings
    grid = bool(entries) and isinstance(entries[0].default_probability, dict)
    single = (DEFAULT_HORIZON_YEARS, at("ratings"))
    if spec.horizon_years is not None:
        single = (spec.horizon_years, at("horizon_years"))
        if grid:
            p.add(at("horizon_years", key=True), "horizon_years applies only to one probability per rating")

    def cells(value: Any, path: tuple[Any, ...]) -> list[_Cell]:
        what = str(path[-1])
        if not grid:
            if isinstance(value, dict):
                p.add(at(*path), f"{what} must be one number, as for the first rating, got a mapping")
                return []
            return [(single[0], value, at(*path))]
        if not isinstance(value, dict) or not value:
            p.add(at(*path), f"{what} must map horizons (years) to probabilities, as for the first rating")
            return []
        out = []
        seen: dict[float, Any] = {}
        for k, v in value.items():
            h = _as_years(k)
            if math.isnan(h):
                p.add(at(*path, k, key=True), f"a horizon must be a number of years, got {k!r}")
            elif h in seen:
                p.add(at(*path, k, key=True), f"horizon {k} is given twice (also as {seen[h]})")
            seen.setdefault(h, k)
            out.append((h, v, at(*path, k)))
        return sorted(out, key=lambda cell: cell[0])

    rows = []
    for i, e in enumerate(entries):
        listed = isinstance(e.aliases, list)
        aliases = e.aliases if isinstance(e.aliases, list) else [e.aliases]  # one without brackets
        row = _Row(
            e.rating,
            at("ratings", i, "rating"),
            [(a, at("ratings", i, "aliases", *([k] if listed else []))) for k, a in enumerate(aliases)],
            cells(e.default_probability, ("ratings", i, "default_probability")),
        )
        if e.expected_loss is not None:
            row.el = cells(e.expected_loss, ("ratings", i, "expected_loss"))
        rows.append(row)
    horizons = [(h, where) for h, _, where in rows[0].pd] if grid and rows else [single]
    if not p.issues:  # after a bad cell, differing horizons would only repeat it
        _same_horizons(p, rows, [h for h, _ in horizons])
    meta: dict[str, tuple[Any, _At]] = {key: (getattr(spec, key), at(key)) for key in ("name", "provenance")}
    meta["severity"] = (spec.severity, at("severity"))
    low = spec.min_horizon_years
    meta["min_horizon_years"] = (DEFAULT_MIN_HORIZON_YEARS if low is None else low, at("min_horizon_years"))
    given = "severity" in data
    where = " (a `# severity:` line or el_ columns)" if labels is not None else " (key `severity`)"
    _loss_basis(p, rows, spec.severity, at("severity", key=True) if given else at(), where)
    p.raise_if_any()
    return _Draft(file, meta, horizons, rows, at("ratings"))


def _horizon_keys_as_text(data: dict[Any, Any], smap: SourceMap) -> None:
    """Write the horizons of grid cells as text keys, with their places: a horizon is a name in
    a field path (``ratings[0].default_probability.5``), not a list index."""
    rows = data.get("ratings")
    if not isinstance(rows, list):
        return
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        for field_name in ("default_probability", "expected_loss"):
            cells = row.get(field_name)
            if not isinstance(cells, dict):
                continue
            base = ("ratings", i, field_name)
            renamed = {}
            for k, v in cells.items():
                text = k if isinstance(k, str) else f"{k:g}" if isinstance(k, (int, float)) else str(k)
                for places in (smap.values, smap.keys):
                    if (*base, k) in places:
                        places[(*base, text)] = places[(*base, k)]
                renamed[text] = v
            row[field_name] = renamed


def _as_years(key: Any) -> float:
    """A horizon key as years; nan when it is not a finite number."""
    try:
        h = float(key)
    except (TypeError, ValueError):
        return math.nan
    return h if math.isfinite(h) else math.nan


# ------------------------------------------------------------------ CSV

_META_LINE = re.compile(r"#\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


def _csv_data(text: str, file: str) -> tuple[dict[str, Any], SourceMap, dict[str, str]]:
    """A CSV table (``# field: value`` lines, a header, one row per rating) laid out as the YAML
    file, with the place of every value and the column each field path comes from.

    Problems of the CSV layout itself (no header, unknown columns, a row with too few cells, a
    field set twice) are reported here; values are checked by the shared schema."""
    from ipabs.deal.source import SourceMap

    p = _Problems(file)
    smap = SourceMap(file)
    smap.values[()] = (1, 1)
    labels: dict[str, str] = {"ratings": ""}
    data: dict[str, Any] = {}
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("#"):
            _meta_line(p, data, smap, line, number)
        elif line.strip():
            lines.append((number, line))
    start = _At(1, 1, "")
    for key in ("name", "provenance"):
        if key not in data:
            p.add(start, f"missing `# {key}: ...` line", "a rating table needs a name and its provenance")
    if not lines:
        p.add(start, "no header row", "start with a header such as `rating,aliases,1,3,5,10`")
        p.raise_if_any()
    header_line, header_text = lines[0]
    header = [c.strip() for c in next(csv.reader([header_text]))]
    columns = _csv_columns(p, header, header_line, header_text)
    smap.values[("ratings",)] = (header_line, 1)
    rows: list[dict[str, Any]] = []
    for number, line in lines[1:]:
        row = _csv_row(p, smap, labels, len(rows), number, line, header, columns)
        if row is not None:
            rows.append(row)
    data["ratings"] = rows
    p.raise_if_any()
    return data, smap, labels


def _csv_columns(p: _Problems, header: list[str], line: int, text: str) -> dict[str, Any]:
    """Classify the header: ``rating``, ``aliases``, then ``default_probability`` [``expected_loss``]
    or one column per horizon (``1``, ``5``, ``10``) [``el_1``, ``el_5``, ``el_10``]."""
    out: dict[str, Any] = {"rating": -1, "aliases": -1, "pd": [], "el": [], "shape": "grid"}
    shapes = set()
    for c, name in enumerate(header):
        at = _At(line, _column(text, c), f"column {name!r}")
        bare = name[3:] if name.startswith("el_") else name
        if name in header[:c]:
            p.add(at, f"duplicate column {name!r}")
        elif name in ("rating", "aliases"):
            out[name] = c
        elif name in ("default_probability", "expected_loss"):
            shapes.add("single")
            out["pd" if name == "default_probability" else "el"].append(c)
        elif _is_number(bare):
            shapes.add("grid")
            out["el" if bare != name else "pd"].append(c)
        else:
            known = ["rating", "aliases", "default_probability", "expected_loss"]
            p.add(
                at,
                f"unknown column {name!r}{_did_you_mean(name, known)}",
                "columns: rating, aliases, then default_probability [expected_loss] or one column per "
                "horizon in years (1, 5, 10) [el_1, el_5, el_10]",
            )
    start = _At(line, 1, "")
    if out["rating"] < 0:
        p.add(start, "no `rating` column")
    if not out["pd"]:
        p.add(start, "no default probability column", "add default_probability, or horizons such as 1,5,10")
    if len(shapes) > 1:
        p.add(start, "default_probability and horizon columns are mixed", "use one shape (docs/ratings.md)")
    out["shape"] = "single" if shapes == {"single"} else "grid"
    return out


def _csv_row(
    p: _Problems,
    smap: SourceMap,
    labels: dict[str, str],
    i: int,
    number: int,
    line: str,
    header: list[str],
    columns: dict[str, Any],
) -> dict[str, Any] | None:
    """Row ``i`` of the ratings as a YAML rating entry; the place of each cell in the source map."""
    cells = next(csv.reader([line]))
    if len(cells) != len(header) or columns["rating"] < 0:
        p.add(
            _At(number, 1, ""), f"{len(cells)} cells for {len(header)} columns", "give one value per column"
        )
        return None

    def put(path: tuple[Any, ...], c: int) -> None:
        smap.values[path] = (number, _column(line, c))
        labels[format_path(path)] = f"column {header[c]!r}"

    base = ("ratings", i)
    smap.values[base] = (number, 1)
    labels[format_path(base)] = ""
    row: dict[str, Any] = {"rating": cells[columns["rating"]].strip()}
    put((*base, "rating"), columns["rating"])
    if columns["aliases"] >= 0:
        aliases = [a for a in re.split(r"[\s|]+", cells[columns["aliases"]].strip()) if a]
        row["aliases"] = aliases
        put((*base, "aliases"), columns["aliases"])
        for k in range(len(aliases)):
            put((*base, "aliases", k), columns["aliases"])
    for field_name, cols in (("default_probability", columns["pd"]), ("expected_loss", columns["el"])):
        if not cols:
            continue
        if columns["shape"] == "single":
            row[field_name] = cells[cols[0]].strip()
            put((*base, field_name), cols[0])
            continue
        grid = {}
        smap.values[(*base, field_name)] = (number, _column(line, cols[0]))
        labels[format_path((*base, field_name))] = f"row {number}"
        for c in cols:
            h = header[c].removeprefix("el_")
            grid[h] = cells[c].strip()
            put((*base, field_name, h), c)
        row[field_name] = grid
    return row


def _meta_line(p: _Problems, data: dict[str, Any], smap: SourceMap, line: str, number: int) -> None:
    """``# field: value`` sets a table field; other comments are free text, except a near miss of
    a field name (a typo must not silently drop a setting: it goes to the schema as an unknown
    key, which names the field meant)."""
    match = _META_LINE.match(line.strip())
    if match is None:
        return
    key, value = match.group(1), match.group(2).strip()
    indent = len(line) - len(line.lstrip())
    key_col, value_col = indent + match.start(1) + 1, indent + match.start(2) + 1
    if key in _CSV_META or _did_you_mean(key, _CSV_META):
        if key == "provenance" and key in data:  # a long provenance may run over several lines
            data[key] = f"{data[key]} {value}"
        elif key in data:
            first = smap.keys[(key,)][0]
            p.add(
                _At(number, key_col, key),
                f"duplicate key {key!r} (first at line {first})",
                "each field may be set once; remove or rename one",
            )
        else:
            data[key] = value
            smap.keys[(key,)] = (number, key_col)
            smap.values[(key,)] = (number, value_col)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _column(line: str, index: int) -> int:
    """1-based column of cell ``index`` of a CSV line (exact when no cell is quoted)."""
    if '"' in line:
        return 1
    return sum(len(cell) + 1 for cell in line.split(",")[:index]) + 1
