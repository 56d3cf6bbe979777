"""Obligor default probabilities fitted from a historical loan performance tape.

A performance tape has one row per (loan, observation date): the loan's ``id``, the
``observation_date``, feature columns and a 0/1 target (``default_12m``: the loan defaulted
within 12 months of the observation date). :func:`fit_pd` fits a logistic regression or a
calibrated gradient-boosting model on the rows observed before an out-of-time cut and
validates it on the rows from the cut on: AUC, KS, Brier score and calibration by grade of
the master scale :data:`MASTER_SCALE`, each observed default rate with its Jeffreys interval.
:func:`score` gives obligors a PD and a grade; :meth:`PDFit.risk_section` a risk section
whose ``pd_by_grade`` the Monte Carlo reads. See docs/pd-models.md.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ipabs.errors import DealError, IpabsError, Issue

# grade name -> upper PD bound (exclusive); grade k covers [bound k-1, bound k)
MASTER_SCALE: dict[str, float] = {
    "G1": 0.0025,
    "G2": 0.005,
    "G3": 0.01,
    "G4": 0.02,
    "G5": 0.04,
    "G6": 0.08,
    "G7": 0.16,
    "G8": 1.0,
}
"""The master scale: grade -> upper bound of its 12-month PD (grade ``Gk`` holds PDs from the
bound of ``Gk-1``, or 0, up to but excluding its own; ``G8`` includes 1)."""

MIN_ROWS = 30
"""Fewer validation rows than this in a grade: its observed default rate is not shown and
its calibration is not tested."""
MIN_DEFAULTS = 5
"""Fewer defaults than this in a grade: its calibration test is flagged as weak."""
INTERVAL = 0.95
"""Coverage of the Jeffreys interval of an observed default rate."""
MAX_ISSUES = 20
"""Located problems reported per kind before the rest are counted."""

ID, DATE = "id", "observation_date"
MODELS = ("logistic", "gbm")
OBLIGOR_COLUMNS = ("obligor", "id")


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class PerformanceTape:
    """A loan performance tape as read, with where each value came from.

    Attributes
    ----------
    frame : DataFrame
        The cells, as read (text from CSV; cell values from Excel); ``observation_date``
        already parsed.
    file : str
        The file name shown in messages.
    rows : ndarray
        Spreadsheet row number of each row of ``frame`` (the header is row 1).
    positions : dict
        Column name -> its 1-based position in the header.
    """

    frame: pd.DataFrame
    file: str
    rows: np.ndarray
    positions: dict[str, int]

    def __len__(self) -> int:
        return len(self.frame)

    def issue(self, row: int, column: str, message: str, hint: str = "") -> Issue:
        """A problem located at spreadsheet ``row`` (0: the whole column) of ``column``."""
        return Issue(self.file, row, self.positions.get(column, 0), column, message, hint)


def _read_table(path: str | Path, what: str) -> PerformanceTape:
    """Read a CSV (UTF-8) or Excel table into text cells with their row numbers."""
    p = Path(path)
    name = str(path)
    if not p.is_file():
        raise IpabsError(f"{name}: {what} {'is a directory' if p.is_dir() else 'not found'}")
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            frame = pd.read_excel(p, dtype=object, engine="openpyxl")
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(
                p,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
                encoding="utf-8-sig",
            )
        else:
            raise IpabsError(
                f"{name}: unsupported file type {suffix or '(none)'!r}; save it as CSV (UTF-8) or .xlsx"
            )
    except UnicodeDecodeError:
        raise IpabsError(f"{name}: not UTF-8 text; save it as 'CSV UTF-8' (Excel: File > Save As)") from None
    except pd.errors.EmptyDataError:
        raise IpabsError(f"{name}: the file is empty; the first row must be the header") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise IpabsError(f"{name}: cannot read the {what}: {str(exc).strip().splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    rows = np.arange(2, len(frame) + 2, dtype=np.int64)
    blank = frame.isna().all(axis=1).to_numpy()
    frame = frame[~blank].reset_index(drop=True)
    positions = {c: i + 1 for i, c in reversed(list(enumerate(frame.columns)))}
    return PerformanceTape(frame, name, rows[~blank], positions)


def _as_tape(table: PerformanceTape | pd.DataFrame, name: str) -> PerformanceTape:
    if isinstance(table, PerformanceTape):
        return table
    frame = table.reset_index(drop=True)
    frame.columns = [str(c).strip() for c in frame.columns]
    positions = {c: i + 1 for i, c in reversed(list(enumerate(frame.columns)))}
    return PerformanceTape(frame, name, np.arange(2, len(frame) + 2, dtype=np.int64), positions)


def _blank(values: pd.Series) -> np.ndarray:
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def _require(tape: PerformanceTape, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in tape.positions]
    if missing:
        have = ", ".join(tape.frame.columns)
        raise DealError(
            [
                Issue(tape.file, 1, 1, c, f"the {what} has no column {c!r}", f"its columns: {have}")
                for c in missing
            ]
        )


def _cells(tape: PerformanceTape, bad: np.ndarray, column: str, message: Any, hint: str) -> list[Issue]:
    """Located issues of the ``bad`` cells of ``column`` (at most :data:`MAX_ISSUES`)."""
    where = np.flatnonzero(bad)
    values = tape.frame[column].to_numpy()
    out = [tape.issue(int(tape.rows[i]), column, message(values[i]), hint) for i in where[:MAX_ISSUES]]
    if len(where) > MAX_ISSUES:
        out.append(tape.issue(0, column, f"... and {len(where) - MAX_ISSUES} more such cells", hint))
    return out


def _parse_dates(tape: PerformanceTape, column: str) -> tuple[np.ndarray, list[Issue]]:
    raw = tape.frame[column]
    out = np.full(len(raw), np.datetime64("NaT"), dtype="datetime64[D]")
    bad = np.zeros(len(raw), dtype=bool)
    for i, v in enumerate(raw.to_numpy()):
        if isinstance(v, (dt.date, np.datetime64, pd.Timestamp)) and not pd.isna(v):
            out[i] = np.datetime64(pd.Timestamp(v).date(), "D")
            continue
        text = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
        try:
            if text[10:].strip().lstrip("T").replace("0", "").replace(":", ""):
                raise ValueError(text)  # a time of day other than midnight
            out[i] = np.datetime64(dt.date.fromisoformat(text[:10]), "D")
        except (ValueError, TypeError):
            bad[i] = True
    issues = _cells(
        tape,
        bad,
        column,
        lambda v: f"{_show(v)} is not a date",
        "write dates as YYYY-MM-DD (e.g. 2024-03-31)",
    )
    return out, issues


def _show(v: Any) -> str:
    return "a blank cell" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(str(v))


def _numbers(raw: pd.Series) -> np.ndarray:
    """Numbers of the cells, NaN where a cell is not a finite number."""
    values = pd.to_numeric(
        raw.map(lambda v: v.strip().replace(",", "") if isinstance(v, str) else v), errors="coerce"
    )
    out = np.array(values, dtype=np.float64)
    out[~np.isfinite(out)] = np.nan
    return out


def load_performance_tape(
    path: str | Path, target: str | None = None, features: Sequence[str] | None = None
) -> PerformanceTape:
    """Read and check a loan performance tape (CSV in UTF-8, or Excel ``.xlsx``).

    Parameters
    ----------
    path : str or Path
        The tape: a header row, then one row per (loan, observation date) with columns
        ``id``, ``observation_date`` (``YYYY-MM-DD``), the target and the features.
    target : str, optional
        The 0/1 target column (e.g. ``default_12m``), checked when given.
    features : sequence of str, optional
        Feature columns to check (default, when ``target`` is given: every column but ``id``,
        ``observation_date`` and the target).

    Returns
    -------
    PerformanceTape

    Raises
    ------
    DealError
        Every problem located at its row and column: a missing column, an empty tape, a date
        that cannot be read, a target that is not 0 or 1, a non-numeric value in a numeric
        feature, a blank feature cell.
    IpabsError
        When the file cannot be read at all.
    """
    tape = _read_table(path, "performance tape")
    _check_structure(tape)
    if target is not None:
        _prepare(tape, target, features)
    return tape


def _check_structure(tape: PerformanceTape) -> np.ndarray:
    _require(tape, (ID, DATE), "performance tape")
    if len(tape) == 0:
        raise DealError([Issue(tape.file, 2, 1, "", "the tape has no rows", "put one row per loan and date")])
    dates, issues = _parse_dates(tape, DATE)
    blank_id = _blank(tape.frame[ID])
    issues += _cells(tape, blank_id, ID, lambda v: "a blank loan id", "give every row its loan's id")
    if issues:
        raise DealError(issues)
    key = pd.DataFrame({"id": tape.frame[ID].astype(str).str.strip().to_numpy(), "date": dates})
    again = key.duplicated(keep="first").to_numpy()
    if again.any():
        first = key.reset_index().groupby(["id", "date"])["index"].first()
        where = np.flatnonzero(again)
        issues = [
            tape.issue(
                int(tape.rows[i]),
                ID,
                f"loan {key['id'][i]!r} has another row at observation date {key['date'][i].date()} "
                f"(row {int(tape.rows[first[(key['id'][i], key['date'][i])]])})",
                "keep one row per loan and observation date",
            )
            for i in where[:MAX_ISSUES]
        ]
        raise DealError(issues)
    return dates


@dataclass(frozen=True)
class _Design:
    """The checked columns of a tape for one target and set of features."""

    frame: pd.DataFrame  # numeric features as floats, categorical ones as text
    y: np.ndarray
    dates: np.ndarray
    numeric: list[str]
    categorical: list[str]


def _default_features(tape: PerformanceTape, target: str) -> list[str]:
    return [c for c in tape.frame.columns if c not in (ID, DATE, target) and not c.startswith("Unnamed:")]


def _feature_columns(
    tape: PerformanceTape, features: Sequence[str], numeric_hint: Sequence[str] | None = None
) -> tuple[pd.DataFrame, list[str], list[str], list[Issue]]:
    """Typed feature columns: a column is numeric when at least half its non-blank cells are
    numbers (the other cells are then errors), else categorical (one-hot encoded)."""
    issues: list[Issue] = []
    out: dict[str, Any] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    for name in features:
        raw = tape.frame[name]
        blank = _blank(raw)
        issues += _cells(
            tape,
            blank,
            name,
            lambda v, name=name: f"blank value of feature {name!r}",
            "fill the cell or drop the row",
        )
        values = _numbers(raw)
        filled = ~blank
        is_numeric = (
            name in numeric_hint
            if numeric_hint is not None
            else bool(filled.any()) and np.isfinite(values[filled]).mean() >= 0.5
        )
        if is_numeric:
            bad = filled & ~np.isfinite(values)
            issues += _cells(
                tape,
                bad,
                name,
                lambda v: f"{_show(v)} is not a number (the column is numeric)",
                "write a plain number, e.g. 0.35",
            )
            out[name] = values
            numeric.append(name)
        else:
            out[name] = raw.map(lambda v: str(v).strip() if not pd.isna(v) else "").to_numpy(dtype=object)
            categorical.append(name)
    return pd.DataFrame(out, columns=list(features)), numeric, categorical, issues


def _prepare(tape: PerformanceTape, target: str, features: Sequence[str] | None) -> _Design:
    dates = _check_structure(tape)
    features = list(features) if features is not None else _default_features(tape, target)
    _require(tape, [target, *features], "performance tape")
    if not features:
        raise DealError(
            [tape.issue(1, target, "the tape has no feature columns", "add columns such as leverage")]
        )
    if target in features:
        raise DealError(
            [tape.issue(1, target, "the target cannot also be a feature", "drop it from --features")]
        )
    y = _numbers(tape.frame[target])
    bad = ~np.isin(y, (0.0, 1.0))
    issues = _cells(
        tape,
        bad,
        target,
        lambda v: f"{_show(v)} is not 0 or 1",
        "write 1 for a loan that defaulted within the window, 0 otherwise",
    )
    frame, numeric, categorical, more = _feature_columns(tape, features)
    issues += more
    if issues:
        raise DealError(issues)
    return _Design(frame, y.astype(np.int64), dates, numeric, categorical)


# --------------------------------------------------------------------------- the master scale


def grade_of(pd_values: np.ndarray) -> np.ndarray:
    """Master-scale grade of each PD (see :data:`MASTER_SCALE`).

    Parameters
    ----------
    pd_values : array_like
        12-month PDs in [0, 1].

    Returns
    -------
    ndarray of str
    """
    names = np.array(list(MASTER_SCALE), dtype=object)
    bounds = np.array(list(MASTER_SCALE.values())[:-1])
    return names[np.searchsorted(bounds, np.asarray(pd_values, dtype=np.float64), side="right")]


def _grade_bounds() -> list[tuple[str, float, float]]:
    out, low = [], 0.0
    for name, high in MASTER_SCALE.items():
        out.append((name, low, high))
        low = high
    return out


def jeffreys_interval(defaults: int, count: int, level: float = INTERVAL) -> tuple[float, float]:
    """Jeffreys interval of a default rate: the equal-tailed interval of the posterior
    Beta(defaults + 1/2, count - defaults + 1/2), with the lower end 0 when there is no
    default and the upper end 1 when every row defaulted (Brown, Cai and DasGupta 2001).

    Parameters
    ----------
    defaults, count : int
        Defaults among ``count`` rows (``count`` > 0).
    level : float
        Coverage, e.g. 0.95.

    Returns
    -------
    (float, float)
    """
    from scipy.stats import beta

    a, b = defaults + 0.5, count - defaults + 0.5
    tail = (1.0 - level) / 2.0
    low = 0.0 if defaults == 0 else float(beta.ppf(tail, a, b))
    high = 1.0 if defaults == count else float(beta.ppf(1.0 - tail, a, b))
    return low, high


def calibration_table(pd_values: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Calibration by master-scale grade of predicted PDs against outcomes.

    Parameters
    ----------
    pd_values : ndarray
        Predicted 12-month PDs.
    y : ndarray
        Outcomes, 0 or 1.

    Returns
    -------
    DataFrame
        One row per grade: ``grade``, ``pd_from``, ``pd_to`` (its bounds), ``count``,
        ``defaults``, ``mean_pd`` (mean predicted PD), ``observed`` (default rate; NaN with
        fewer than :data:`MIN_ROWS` rows), ``ci_low``, ``ci_high`` (Jeffreys interval),
        ``outside`` (the mean predicted PD lies outside the interval) and ``status``:
        ``ok``, ``empty``, ``few rows`` (not tested) or ``few defaults`` (a weak test: fewer
        than :data:`MIN_DEFAULTS` defaults).
    """
    grades = grade_of(pd_values)
    rows = []
    for name, low, high in _grade_bounds():
        inside = grades == name
        n, d = int(inside.sum()), int(y[inside].sum())
        row: dict[str, Any] = {"grade": name, "pd_from": low, "pd_to": high, "count": n, "defaults": d}
        if n == 0:
            row.update(mean_pd=np.nan, observed=np.nan, ci_low=np.nan, ci_high=np.nan, outside=False)
            row["status"] = "empty"
        else:
            lo, hi = jeffreys_interval(d, n)
            mean = float(pd_values[inside].mean())
            tested = n >= MIN_ROWS
            row.update(
                mean_pd=mean,
                observed=d / n if tested else np.nan,
                ci_low=lo,
                ci_high=hi,
                outside=bool(tested and not lo <= mean <= hi),
            )
            row["status"] = "few rows" if not tested else ("few defaults" if d < MIN_DEFAULTS else "ok")
        rows.append(row)
    return pd.DataFrame(rows)


def ks_statistic(pd_values: np.ndarray, y: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic of a score: the largest gap between the cumulative
    distributions of the scores of defaulted and performing rows, max(TPR - FPR) over the
    thresholds of the ROC curve."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, pd_values)
    return float(np.max(tpr - fpr))


# --------------------------------------------------------------------------- fitting


@dataclass
class PDFit:
    """A fitted PD model and its out-of-time validation.

    Attributes
    ----------
    model : estimator
        The fitted scikit-learn estimator (``predict_proba`` on a frame of the features).
    kind : str
        ``logistic`` or ``gbm``.
    target : str
    features, numeric, categorical : list of str
        Every feature; the numeric ones; the categorical (one-hot encoded) ones.
    categories : dict
        Categorical feature -> the categories seen in training.
    monotone : dict
        Feature -> +1 or -1 (the GBM's monotone constraints).
    oot_from : date
        First observation date of the validation window.
    n_train, defaults_train, n_validation, defaults_validation : int
    auc, ks, brier : float
        Validation AUC, KS and Brier score.
    calibration : DataFrame
        :func:`calibration_table` of the validation rows.
    grade_pd : dict
        Grade -> the PD the risk section gives it (mean fitted PD of the training rows in
        the grade; the geometric middle of its bounds when it has none).
    coefficients : DataFrame or None
        Logistic: ``term``, ``coefficient``, ``std_error``, ``z`` in the features' own units.
    notes : list of str
    validation_pd, validation_y, validation_dates : ndarray
        Predicted PDs, outcomes and dates of the validation rows.
    train_pd : ndarray
        Fitted PDs of the training rows.
    """

    model: Any
    kind: str
    target: str
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    categories: dict[str, list[str]]
    monotone: dict[str, int]
    oot_from: dt.date
    n_train: int
    defaults_train: int
    n_validation: int
    defaults_validation: int
    auc: float
    ks: float
    brier: float
    calibration: pd.DataFrame
    grade_pd: dict[str, float]
    coefficients: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    validation_pd: np.ndarray = field(default_factory=lambda: np.empty(0))
    validation_y: np.ndarray = field(default_factory=lambda: np.empty(0))
    train_pd: np.ndarray = field(default_factory=lambda: np.empty(0))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """12-month PDs of rows holding the feature columns (already typed)."""
        return np.asarray(self.model.predict_proba(frame[self.features])[:, 1], dtype=np.float64)

    def risk_section(self, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A risk section with this fit's ``pd_by_grade``: ``base`` (a deal's or risk file's
        ``risk`` mapping) with its ``pd_by_grade`` replaced, or ``pd_by_grade`` alone."""
        out = dict(base or {})
        out["pd_by_grade"] = {g: float(f"{p:.6g}") for g, p in self.grade_pd.items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The validation as JSON-ready values."""
        from ipabs.io import json_value

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: json_value(v) for k, v in r.items()} for r in frame.to_dict("records")]

        return {
            "model": self.kind,
            "target": self.target,
            "features": self.features,
            "categorical": self.categorical,
            "monotone": self.monotone,
            "oot_from": self.oot_from.isoformat(),
            "train": {"rows": self.n_train, "defaults": self.defaults_train},
            "validation": {
                "rows": self.n_validation,
                "defaults": self.defaults_validation,
                "auc": self.auc,
                "ks": self.ks,
                "brier": self.brier,
                "calibration": records(self.calibration),
            },
            "pd_by_grade": self.grade_pd,
            "coefficients": None if self.coefficients is None else records(self.coefficients),
            "notes": self.notes,
        }


def _split(dates: np.ndarray, oot_from: dt.date | str | None, file: str) -> np.datetime64:
    distinct = np.unique(dates)
    if oot_from is None:
        if len(distinct) < 2:
            raise DealError(
                [
                    Issue(
                        file,
                        0,
                        0,
                        DATE,
                        f"every row has the one observation date {distinct[0]}: "
                        "nothing to validate out of time",
                        "give the tape several observation dates",
                    )
                ]
            )
        return distinct[len(distinct) - max(1, math.ceil(len(distinct) / 4))]
    try:
        cut = dt.date.fromisoformat(str(oot_from)[:10])
    except ValueError:
        raise IpabsError(f"--oot-from {oot_from}: not a date; write YYYY-MM-DD") from None
    return np.datetime64(cut, "D")


def _window_issue(file: str, target: str, what: str, n: int, d: int, hint: str) -> Issue | None:
    if n == 0:
        return Issue(file, 0, 0, DATE, f"the {what} window has no rows", hint)
    if d == 0 or d == n:
        kind = "no default" if d == 0 else "only defaults"
        return Issue(file, 0, 0, target, f"the {what} window's {n} rows have {kind}", hint)
    return None


def _preprocessor(numeric: list[str], categories: Mapping[str, list[str]], scale: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", StandardScaler() if scale else "passthrough", numeric))
    if categories:
        # the categories of the whole training window, so that every fold of the GBM's
        # calibration encodes alike, whatever categories its own rows hold
        encoder = OneHotEncoder(categories=list(categories.values()), drop="first", sparse_output=False)
        parts.append(("categorical", encoder, list(categories)))
    return ColumnTransformer(parts, verbose_feature_names_out=False)


def fit_pd(
    tape: PerformanceTape | pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    model: str = "logistic",
    monotone: Mapping[str, int] | None = None,
    oot_from: dt.date | str | None = None,
) -> PDFit:
    """Fit a 12-month PD model on a performance tape and validate it out of time.

    Parameters
    ----------
    tape : PerformanceTape or DataFrame
        From :func:`load_performance_tape`, or a frame with the same columns.
    target : str
        The 0/1 target column, e.g. ``default_12m``.
    features : sequence of str, optional
        Feature columns (default: every column but ``id``, ``observation_date`` and the target).
    model : {"logistic", "gbm"}
        ``logistic``: unpenalised logistic regression on standardised numeric features and
        one-hot categorical ones (first category dropped), not re-calibrated: its maximum
        likelihood fit is calibrated in sample (mean PD = default rate), and the calibration
        is tested out of time. ``gbm``: histogram gradient boosting with ``monotone``
        constraints, calibrated by isotonic regression (3-fold ``CalibratedClassifierCV``).
    monotone : mapping, optional
        Numeric feature -> +1 (PD rises with it) or -1 (PD falls); ``gbm`` only.
    oot_from : date or str, optional
        Train on rows observed before this date, validate on the rest (default: the last
        quarter of the distinct observation dates are validation).

    Returns
    -------
    PDFit

    Raises
    ------
    DealError
        Located problems of the tape, or a training or validation window without a default
        (or without a performing row).
    IpabsError
        An unknown model, a bad ``monotone`` or ``oot_from``.
    """
    if model not in MODELS:
        raise IpabsError(f"--model {model}: unknown model; choose logistic or gbm")
    t = _as_tape(tape, "<tape>")
    design = _prepare(t, target, features)
    monotone = dict(monotone or {})
    for name, sign in monotone.items():
        if name not in design.numeric:
            kind = "a categorical feature" if name in design.categorical else "not a feature"
            raise IpabsError(f"--monotone {name}: {kind}; give numeric features: {', '.join(design.numeric)}")
        if sign not in (1, -1):
            raise IpabsError(f"--monotone {name}={sign}: give +1 (PD rises with it) or -1 (PD falls)")
    cut = _split(design.dates, oot_from, t.file)
    train = design.dates < cut
    valid = ~train
    y = design.y
    hint = "choose another --oot-from so that both windows have defaults and performing loans"
    issues = [
        i
        for i in (
            _window_issue(
                t.file, target, f"training (before {cut})", int(train.sum()), int(y[train].sum()), hint
            ),
            _window_issue(
                t.file, target, f"validation (from {cut})", int(valid.sum()), int(y[valid].sum()), hint
            ),
        )
        if i is not None
    ]
    if issues:
        raise DealError(issues)

    X = design.frame
    categories = {c: sorted(set(X.loc[train, c])) for c in design.categorical}
    unseen = [
        (i, c)
        for c in design.categorical
        for i in np.flatnonzero(valid & ~X[c].isin(categories[c]).to_numpy())
    ]
    notes: list[str] = []
    if unseen:
        i, c = unseen[0]
        raise DealError(
            [
                t.issue(
                    int(t.rows[i]),
                    c,
                    f"{X[c].iloc[i]!r} of {c!r} appears only in the validation window ({len(unseen)} rows)",
                    "the model cannot score a category it was not trained on; choose an earlier --oot-from",
                )
            ]
        )
    if model == "logistic":
        _check_separation(t, X[train], y[train], design.categorical)
    estimator = _estimator(model, design, categories, monotone)
    estimator.fit(X[train], y[train])
    train_pd = estimator.predict_proba(X[train])[:, 1]
    if model == "logistic" and np.any((train_pd < SEPARATED) | (train_pd > 1.0 - SEPARATED)):
        raise DealError(
            [
                Issue(
                    t.file,
                    0,
                    0,
                    target,
                    "the features separate defaulters from performing loans in the training window "
                    "(fitted PDs of 0 or 1): the maximum likelihood estimate does not exist, so no "
                    "coefficient or PD from it can be trusted",
                    "drop or bin the separating feature, or use --model gbm",
                )
            ]
        )
    valid_pd = estimator.predict_proba(X[valid])[:, 1]

    from sklearn.metrics import brier_score_loss, roc_auc_score

    coefficients = None
    if model == "logistic":
        coefficients = _coefficients(estimator, X[train], design)
        for name, sign in monotone.items():
            fitted = float(coefficients.set_index("term").loc[name, "coefficient"])
            if fitted * sign < 0:
                notes.append(
                    f"{name}: the fitted coefficient {fitted:+.4g} has the sign opposite to --monotone "
                    f"{name}={sign:+d} (a logistic regression is monotone in each feature, "
                    "with the sign fitted)"
                )
    fit = PDFit(
        model=estimator,
        kind=model,
        target=target,
        features=list(X.columns),
        numeric=design.numeric,
        categorical=design.categorical,
        categories=categories,
        monotone=monotone,
        oot_from=pd.Timestamp(cut).date(),
        n_train=int(train.sum()),
        defaults_train=int(y[train].sum()),
        n_validation=int(valid.sum()),
        defaults_validation=int(y[valid].sum()),
        auc=float(roc_auc_score(y[valid], valid_pd)),
        ks=ks_statistic(valid_pd, y[valid]),
        brier=float(brier_score_loss(y[valid], valid_pd)),
        calibration=calibration_table(valid_pd, y[valid]),
        grade_pd=_grade_pd(train_pd),
        coefficients=coefficients,
        notes=notes,
        validation_pd=valid_pd,
        validation_y=y[valid],
        train_pd=train_pd,
    )
    zero = int((train_pd == 0.0).sum() + (valid_pd == 0.0).sum())
    if zero and model == "gbm":
        fit.notes.append(
            f"{zero} rows have a fitted PD of exactly 0 (isotonic calibration puts the lowest scores "
            "at the lowest observed rate); such a PD means 'below what the tape can measure', not 'never'"
        )
    flagged = fit.calibration[fit.calibration["outside"]]
    if len(flagged):
        fit.notes.append(
            "mean predicted PD outside the observed default rate's 95% interval in grade(s) "
            + ", ".join(flagged["grade"])
        )
    return fit


SEPARATED = 1e-9
"""A logistic fit giving a training row a PD within this of 0 or 1 has met separation."""


def _check_separation(t: PerformanceTape, X: pd.DataFrame, y: np.ndarray, categorical: list[str]) -> None:
    """Refuse a logistic fit whose training rows hold a category without a default, or with
    only defaults: its coefficient would run off to infinity (separation)."""
    issues = []
    for c in categorical:
        for value, group in pd.Series(y, index=X.index).groupby(X[c].to_numpy()):
            d, n = int(group.sum()), len(group)
            if d in (0, n):
                kind = "no default" if d == 0 else "only defaults"
                issues.append(
                    t.issue(
                        0,
                        c,
                        f"{value!r} has {kind} among its {n} training rows: a logistic regression "
                        "cannot estimate its effect (it would be infinite)",
                        "merge it with a similar category, drop the feature, or use --model gbm",
                    )
                )
    if issues:
        raise DealError(issues)


def _estimator(
    model: str, design: _Design, categories: Mapping[str, list[str]], monotone: Mapping[str, int]
) -> Any:
    from sklearn.pipeline import Pipeline

    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        # C=inf: no penalty, the maximum likelihood fit (standard errors below assume it);
        # standardised features make lbfgs converge well within max_iter
        return Pipeline(
            [
                ("encode", _preprocessor(design.numeric, categories, scale=True)),
                ("logistic", LogisticRegression(C=np.inf, max_iter=5000, tol=1e-8)),
            ]
        )
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier

    encode = _preprocessor(design.numeric, categories, scale=False)
    # the encoder puts the numeric columns first, in order; one-hot columns are unconstrained
    n_cat = sum(len(v) - 1 for v in categories.values())
    cst = [int(monotone.get(c, 0)) for c in design.numeric] + [0] * n_cat
    gbm = HistGradientBoostingClassifier(
        monotonic_cst=cst,
        learning_rate=0.1,
        max_iter=100,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=0,
    )
    return CalibratedClassifierCV(Pipeline([("encode", encode), ("gbm", gbm)]), method="isotonic", cv=3)


def _coefficients(pipeline: Any, X: pd.DataFrame, design: _Design) -> pd.DataFrame:
    """Coefficients in the features' own units with standard errors from the inverse Fisher
    information of the unpenalised fit, Var(beta) = (D' W D)^-1 with W = diag(p (1 - p))."""
    encode, logistic = pipeline.named_steps["encode"], pipeline.named_steps["logistic"]
    names = list(encode.get_feature_names_out())
    beta = logistic.coef_[0].copy()
    intercept = float(logistic.intercept_[0])
    if design.numeric:  # undo the scaling of the numeric columns (the first ones)
        scaler = encode.named_transformers_["numeric"]
        k = len(design.numeric)
        beta[:k] = beta[:k] / scaler.scale_
        intercept -= float(np.sum(beta[:k] * scaler.mean_))
    raw = encode.transform(X)
    if design.numeric:
        k = len(design.numeric)
        raw[:, :k] = raw[:, :k] * scaler.scale_ + scaler.mean_
    D = np.column_stack([np.ones(len(raw)), raw])
    p = pipeline.predict_proba(X)[:, 1]
    info = D.T @ (D * (p * (1.0 - p))[:, None])
    cov = np.linalg.pinv(info)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    coef = np.concatenate([[intercept], beta])
    return pd.DataFrame({"term": ["intercept", *names], "coefficient": coef, "std_error": se, "z": coef / se})


def _grade_pd(train_pd: np.ndarray) -> dict[str, float]:
    grades = grade_of(train_pd)
    out: dict[str, float] = {}
    for name, low, high in _grade_bounds():
        inside = grades == name
        out[name] = (
            float(train_pd[inside].mean())
            if inside.any()
            else math.sqrt((low if low > 0 else high / 2) * high)
        )
    return out


# --------------------------------------------------------------------------- scoring


def load_obligors(path: str | Path) -> PerformanceTape:
    """Read an obligors table (CSV or Excel) to :func:`score`: an ``obligor`` (or ``id``)
    column and the model's feature columns."""
    return _read_table(path, "obligors table")


def score(result: PDFit, obligors: PerformanceTape | pd.DataFrame) -> pd.DataFrame:
    """Annual PD and master-scale grade of each obligor.

    The model's 12-month PD is taken as the obligor's annual PD (``pd`` of a loan tape or
    deal, on the Monte Carlo's ACT/365 clock).

    Parameters
    ----------
    result : PDFit
    obligors : PerformanceTape or DataFrame
        An ``obligor`` (or ``id``) column and every feature of the model.

    Returns
    -------
    DataFrame
        ``obligor``, ``pd``, ``grade``.

    Raises
    ------
    DealError
        Located problems: a missing column, a non-numeric or blank value, a category the model
        was not trained on.
    """
    t = _as_tape(obligors, "<obligors>")
    key = next((c for c in OBLIGOR_COLUMNS if c in t.positions), None)
    if key is None:
        raise DealError([Issue(t.file, 1, 0, "obligor", "the obligors table has no column 'obligor'", "")])
    _require(t, result.features, "obligors table")
    if len(t) == 0:
        raise DealError([Issue(t.file, 2, 1, "", "the obligors table has no rows", "")])
    frame, _, _, issues = _feature_columns(t, result.features, numeric_hint=result.numeric)
    issues += _cells(t, _blank(t.frame[key]), key, lambda v: "a blank obligor name", "name every obligor")
    for c in result.categorical:
        known = result.categories[c]
        issues += _cells(
            t,
            ~frame[c].isin(known).to_numpy() & ~_blank(t.frame[c]),
            c,
            lambda v, c=c: f"{_show(v)}: no {c!r} of that name in the training tape",
            "known: " + ", ".join(known),
        )
    if issues:
        raise DealError(issues)
    pds = result.predict(frame)
    return pd.DataFrame(
        {"obligor": t.frame[key].astype(str).str.strip().to_numpy(), "pd": pds, "grade": grade_of(pds)}
    )


# --------------------------------------------------------------------------- the chart


def calibration_chart(result: PDFit) -> Any:
    """Predicted against observed 12-month default rates by grade of the validation rows.

    Each grade shows its mean predicted PD and its observed default rate with the 95%
    Jeffreys interval; grades not tested (too few rows) show only the interval, in grey.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    cal = result.calibration[result.calibration["count"] > 0].reset_index(drop=True)
    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: renders to files and notebooks, never to a screen
    ax = fig.subplots()
    x = np.arange(len(cal))
    tested = cal["status"] != "few rows"
    mid = np.where(tested, cal["observed"], (cal["ci_low"] + cal["ci_high"]) / 2)
    err = np.vstack([mid - cal["ci_low"], cal["ci_high"] - mid])
    ax.errorbar(
        x[tested],
        mid[tested],
        yerr=err[:, tested],
        fmt="o",
        color="C0",
        capsize=4,
        label="observed (95% interval)",
    )
    if (~tested).any():
        ax.errorbar(
            x[~tested],
            mid[~tested],
            yerr=err[:, ~tested],
            fmt="none",  # no point: too few rows for an observed rate to mean much
            color="C7",
            capsize=4,
            label=f"95% interval only (under {MIN_ROWS} rows)",
        )
    ax.plot(x, cal["mean_pd"], "D", color="C3", label="mean predicted PD")
    for i, r in cal.iterrows():
        if r["outside"]:
            ax.annotate("!", (x[i], r["mean_pd"]), textcoords="offset points", xytext=(6, 0), color="C3")
    ax.set_xticks(x, [f"{g}\n{n:,}" for g, n in zip(cal["grade"], cal["count"], strict=True)])
    ax.set_xlabel("grade (validation rows)")
    ax.set_ylabel("12-month default rate")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(f"PD calibration out of time ({result.kind}, from {result.oot_from})")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


# --------------------------------------------------------------------------- synthetic data

SYNTHETIC_INDUSTRIES: dict[str, tuple[float, float]] = {
    # industry -> (share of loans, its term in the true logit)
    "software": (0.30, 0.0),
    "electronics": (0.25, -0.2),
    "equipment": (0.20, 0.1),
    "biomed": (0.15, 0.35),
    "new_materials": (0.10, 0.25),
}
SYNTHETIC_COEFFICIENTS: dict[str, float] = {
    "intercept": -1.0,
    "leverage": 2.5,
    "revenue_growth": -1.5,
    "years_in_business": -0.08,
    "granted_patents": -0.06,
    "patent_remaining_life": -0.05,
    "trl": -0.15,
    "ip_coverage": -0.35,
}
"""The true logit of the synthetic tape: ``intercept + sum(coefficient x feature) + industry term``."""


def synthetic_tape(
    n_loans: int, seed: int, start: str = "2019-03-31", quarters: int = 24
) -> tuple[pd.DataFrame, np.ndarray]:
    """A SYNTHETIC performance tape drawn from a known logistic model (for tests and examples).

    Each loan enters at a random quarter-end, is observed each quarter-end for up to eight
    quarters, and leaves after an observation whose 12-month default flag is 1. At each
    observation the flag is drawn as Bernoulli(true PD) with
    ``logit(true PD) = SYNTHETIC_COEFFICIENTS . features + SYNTHETIC_INDUSTRIES term``.

    Parameters
    ----------
    n_loans : int
    seed : int
    start : str
        First quarter-end.
    quarters : int
        Number of quarter-ends.

    Returns
    -------
    tape : DataFrame
        ``id``, ``observation_date``, the features, ``industry`` and ``default_12m``.
    true_pd : ndarray
        The true 12-month PD of each row.
    """
    from ipabs.dates import add_months

    rng = np.random.default_rng(seed)
    first = dt.date.fromisoformat(start)
    ends = [add_months(first, 3 * q) for q in range(quarters)]
    industries = list(SYNTHETIC_INDUSTRIES)
    shares = np.array([s for s, _ in SYNTHETIC_INDUSTRIES.values()])
    b = SYNTHETIC_COEFFICIENTS
    rows: list[dict[str, Any]] = []
    true: list[float] = []
    for k in range(n_loans):
        industry = industries[rng.choice(len(industries), p=shares / shares.sum())]
        leverage0 = rng.beta(2.0, 3.0)
        growth0 = rng.normal(0.12, 0.2)
        years0 = 1.0 + rng.gamma(2.0, 2.5)
        patents = int(rng.poisson(4.0)) + 1
        life0 = rng.uniform(4.0, 18.0)
        trl = int(rng.integers(3, 10))
        coverage0 = float(np.exp(rng.normal(np.log(1.6), 0.4)))
        entry = int(rng.integers(0, quarters))
        for q in range(entry, min(entry + 8, quarters)):
            age = (q - entry) / 4.0
            x = {
                "leverage": float(np.clip(leverage0 + rng.normal(0.0, 0.03), 0.02, 0.98)),
                "revenue_growth": growth0 + rng.normal(0.0, 0.05),
                "years_in_business": years0 + age,
                "granted_patents": patents,
                "patent_remaining_life": life0 - age,
                "trl": trl,
                "ip_coverage": coverage0 * float(np.exp(rng.normal(0.0, 0.05))),
            }
            x = {n: round(v, 4) if isinstance(v, float) else v for n, v in x.items()}
            logit = b["intercept"] + sum(b[n] * v for n, v in x.items()) + SYNTHETIC_INDUSTRIES[industry][1]
            p = 1.0 / (1.0 + math.exp(-logit))
            flag = int(rng.random() < p)
            rows.append(
                {
                    "id": f"L{k + 1:05d}",
                    "observation_date": ends[q].isoformat(),
                    **x,
                    "industry": industry,
                    "default_12m": flag,
                }
            )
            true.append(p)
            if flag:
                break
    return pd.DataFrame(rows), np.array(true)
