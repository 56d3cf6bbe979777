"""Sensitivities: run a deal over a grid of parameter values (``ipabs sweep``).

A parameter is addressed by its path in the deal's YAML (``tranches.senior.balance``,
``risk.pd_multiplier``); :func:`set_path` edits the raw YAML data, and every point of the grid
is validated and compiled as a deal file would be, so a sweep can set anything a deal file can.
"""

from __future__ import annotations

import copy
import itertools
import re
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ipabs.cluster import accepts_client
from ipabs.console import ProgressBar
from ipabs.errors import DealError, IpabsError, format_path

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

    from ipabs.deal.load import LoadedDeal
    from ipabs.deal.risk import RiskModel

Part = str | int

MC_METRICS = (
    "original_balance",
    "expected_loss",
    "expected_loss_se",
    "probability_of_loss",
    "probability_of_loss_se",
    "expected_wal_years",
    "mean_yield",
    "pool_expected_loss",
    "pool_expected_loss_se",
    "pool_expected_default_rate",
)
"""Metric columns of a Monte Carlo sweep (after the swept paths and ``tranche``)."""

RUN_METRICS = ("original_balance", "loss", "loss_pct", "wal_years", "yield")
"""Metric columns of a deterministic sweep."""

_NAME_KEYS = ("name", "id", "obligor")  # how a list element is addressed by name


class PathError(IpabsError):
    """A parameter path that does not address a value of the deal."""


# --------------------------------------------------------------------------- paths

_PATH = re.compile(r"(?:[^.\[\]\s]+|\[[^\[\]]+\])(?:\.[^.\[\]\s]+|\[[^\[\]]+\])*")
_PART = re.compile(r"\.?([^.\[\]]+)|\[([^\[\]]+)\]")


def parse_path(text: str) -> list[Part]:
    """Split a parameter path into keys (str) and list indices (int).

    Parameters
    ----------
    text : str
        Dotted keys; a list element by index (``tranches[0]`` or ``tranches.0``) or by name
        (``tranches.senior`` or ``tranches[senior]``).

    Returns
    -------
    list of str or int

    Raises
    ------
    PathError
        If the text is not a path.

    Examples
    --------
    >>> parse_path("pools.smes.loans[3].rate")
    ['pools', 'smes', 'loans', 3, 'rate']
    """
    if not _PATH.fullmatch(text.strip()):
        raise PathError(
            f"{text!r} is not a parameter path: write dotted keys, with list elements by index or "
            "name, e.g. tranches.senior.balance, tranches[0].coupon, risk.recovery.rate"
        )
    parts: list[Part] = []
    for dotted, bracketed in _PART.findall(text.strip()):
        token = (dotted or bracketed).strip().strip("'\"")
        parts.append(int(token) if re.fullmatch(r"-?\d+", token) else token)
    return parts


def _members(tp: Any) -> list[Any]:
    from ipabs.deal.validate import _members, _strip

    return [_strip(m) for m in _members(tp)] if tp is not None else []


def _is_model(tp: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _fits_kind(model: type[BaseModel], node: Any) -> bool:
    """Whether a mapping's ``kind`` (if any) selects ``model`` among a union's members."""
    f = model.model_fields.get("kind")
    if f is None or not isinstance(node, dict) or "kind" not in node:
        return True
    from ipabs.deal.validate import _strip

    options = typing.get_args(_strip(f.annotation))
    return not options or node["kind"] in options


def _models(tp: Any, node: Any) -> list[type[BaseModel]]:
    """The models a mapping ``node`` of annotation ``tp`` may be."""
    return [m for m in _members(tp) if _is_model(m) and _fits_kind(m, node)]


def _child(tp: Any, node: Any, key: Part) -> tuple[Any, str | None]:
    """Annotation of ``node[key]`` (None: unknown) and the key as YAML spells it (None when
    the schema does not know the key)."""
    from ipabs.deal.validate import _field

    for m in _members(tp):
        origin = typing.get_origin(m)
        if origin is list and isinstance(key, int):
            return typing.get_args(m)[0], None
        if origin is dict and isinstance(key, str):
            return typing.get_args(m)[1], None
        if _is_model(m) and isinstance(key, str) and _fits_kind(m, node):
            f = _field(m, key)
            if f is not None:
                spelt = next(n for n, g in m.model_fields.items() if g is f)
                return f.annotation, f.alias or spelt
    return None, None


def _element_names(items: list[Any]) -> list[str]:
    out = []
    for i, item in enumerate(items):
        name = next((item[k] for k in _NAME_KEYS if isinstance(item, dict) and k in item), None)
        out.append(str(name) if name is not None else f"[{i}]")
    return out


def _index(items: list[Any], part: Part, where: str, text: str) -> int:
    if isinstance(part, int):
        if not 0 <= part < len(items):
            span = f"0-{len(items) - 1}" if items else "none"
            raise PathError(
                f"{text}: index {part} is out of range: {where} has {len(items)} element(s) (indices {span})"
            )
        return part
    hits = [
        i
        for i, item in enumerate(items)
        if isinstance(item, dict) and any(item.get(k) == part for k in _NAME_KEYS)
    ]
    if len(hits) > 1:
        raise PathError(
            f"{text}: {part!r} names several elements of {where} (indices "
            f"{', '.join(map(str, hits))}); address one by index, e.g. {where}[{hits[0]}]"
        )
    if not hits:
        from ipabs.deal.validate import suggest

        names = _element_names(items)
        hint = suggest(part, names)
        raise PathError(
            f"{text}: no element named {part!r} in {where}"
            + (f" ({hint})" if hint else "")
            + "; "
            + (f"available: {', '.join(names)}, or an index 0-{len(items) - 1}" if items else "it is empty")
        )
    return hits[0]


def _unknown_key(node: dict[str, Any], tp: Any, key: Part, where: str, text: str) -> PathError:
    from ipabs.deal.validate import field_names, suggest

    models = _models(tp, node)
    keys = list(dict.fromkeys(k for m in models for k in field_names(m))) if models else list(node)
    if isinstance(key, int):
        return PathError(
            f"{text}: {where} is a mapping, not a list: address it by key; available keys: {', '.join(keys)}"
        )
    hint = suggest(key, keys)
    return PathError(
        f"{text}: unknown key {key!r} in {where}"
        + (f" ({hint})" if hint else "")
        + "; "
        + (f"available keys: {', '.join(map(str, keys))}" if keys else "it has no keys")
    )


def resolve_path(data: Any, path: str | Sequence[Part], *, root: Any = None) -> tuple[Part, ...]:
    """The concrete path (keys and indices) that ``path`` addresses in ``data``, without
    changing ``data``.

    Parameters
    ----------
    data : dict
        A deal's YAML data (as parsed by :func:`ipabs.deal.source.parse_yaml`).
    path : str or sequence of str and int
        See :func:`parse_path`.
    root : pydantic model class, optional
        The model ``data`` is validated against (default: :class:`ipabs.deal.schema.Deal`).

    Returns
    -------
    tuple of str and int
        E.g. ``('tranches', 0, 'balance')`` for ``tranches.senior.balance``.

    Raises
    ------
    PathError
        If a part of the path is unknown (the message lists the available keys or names).
    """
    return _walk(copy.deepcopy(data), path, root, None, set_value=False)


def set_path(data: Any, path: str | Sequence[Part], value: Any, *, root: Any = None) -> tuple[Part, ...]:
    """Set the value at a parameter path of a deal's YAML data, in place.

    Keys the schema knows may be absent from the data (``risk.pd_multiplier`` on a deal that
    does not write it): missing mappings on the way are created. Keys of free-form mappings
    (scenario names, grades) and list elements must exist.

    Parameters
    ----------
    data : dict
        A deal's YAML data (as parsed by :func:`ipabs.deal.source.parse_yaml`); changed in place.
    path : str or sequence of str and int
        Dotted keys; a list element by index (``tranches[0]``) or by its ``name`` (``id`` or
        ``obligor`` for assets): ``tranches.senior.balance``, ``pools.smes.loans[3].rate``.
    value : Any
        The new value, as YAML would give it (``0.2``, ``"5%"``, ``"12.5m"``); it is validated
        when the deal is built.
    root : pydantic model class, optional
        The model ``data`` is validated against (default: :class:`ipabs.deal.schema.Deal`).

    Returns
    -------
    tuple of str and int
        The concrete path that was set, e.g. ``('tranches', 0, 'balance')``.

    Raises
    ------
    PathError
        If a part of the path is unknown (the message lists the available keys or names).

    Examples
    --------
    >>> from ipabs.deal.source import read_yaml
    >>> data, _ = read_yaml("scenarios/caohejing_ip_pledge.yaml")  # doctest: +SKIP
    >>> set_path(data, "tranches.sub.balance", "10m")  # doctest: +SKIP
    ('tranches', 1, 'balance')
    """
    return _walk(data, path, root, value, set_value=True)


def _walk(
    data: Any, path: str | Sequence[Part], root: Any, value: Any, *, set_value: bool
) -> tuple[Part, ...]:
    if root is None:
        from ipabs.deal.schema import Deal

        root = Deal
    parts = parse_path(path) if isinstance(path, str) else list(path)
    text = path if isinstance(path, str) else format_path(parts)
    if not parts:
        raise PathError("an empty parameter path addresses nothing")
    node, tp = data, root
    concrete: list[Part] = []
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        where = format_path(concrete) or "the deal"
        if isinstance(node, list):
            idx = _index(node, part, where, text)
            child_tp, _ = _child(tp, node, idx)
            key: Part = idx
        elif isinstance(node, dict):
            child_tp, spelt = _child(tp, node, part)
            if isinstance(part, str) and part in node:
                key = part
            elif spelt is not None and _models(tp, node):  # a field the file leaves out
                key = spelt
            else:
                raise _unknown_key(node, tp, part, where, text)
        else:
            raise PathError(
                f"{text}: {where} is {_show(node)}, not a mapping or a list, so it has no {part!r}; "
                f"set {where} itself"
            )
        concrete.append(key)
        if last:
            if set_value:
                node[key] = value
            break
        child = node[key] if (isinstance(node, list) or key in node) else None
        if child is None and isinstance(parts[k + 1], str) and _models(child_tp, {}):
            child = {}  # a section or sub-mapping the file leaves out (or writes empty)
            node[key] = child
        elif child is None:
            raise PathError(
                f"{text}: {format_path(concrete)} is not written in the deal; it has no {parts[k + 1]!r}"
            )
        node, tp = child, child_tp
    return tuple(concrete)


def _show(value: Any) -> str:
    from ipabs.deal.validate import show

    return show(value)


# --------------------------------------------------------------------------- values


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets, braces and quotes."""
    out, depth, quote, cur = [], 0, "", []
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    out.append("".join(cur))
    return out


def parse_setting(text: str) -> tuple[str, list[Any]]:
    """Parse ``PATH=V1,V2,...`` into the path and its values, each read as a YAML scalar
    (``0.2``, ``5%``, ``12.5m``, ``true``, ``2025-06-30``).

    Raises
    ------
    IpabsError
        If there is no ``=``, no path, an empty value or a value YAML cannot read.

    Examples
    --------
    >>> parse_setting("risk.correlation=0.1,0.2")
    ('risk.correlation', [0.1, 0.2])
    """
    from ipabs.deal.source import parse_yaml

    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not path:
        raise IpabsError(f"{text!r}: write PATH=V1,V2,..., e.g. risk.correlation=0.1,0.2")
    parse_path(path)
    out = []
    for item in _split_top(values):
        if not item.strip():
            raise IpabsError(f"{text!r}: empty value; separate values by single commas")
        try:
            value, _ = parse_yaml(item.strip(), "value")
        except DealError as exc:
            raise IpabsError(
                f"{text!r}: cannot read the value {item.strip()!r}: {exc.issues[0].message}"
            ) from None
        out.append(value)
    return path, out


def format_value(value: Any, grouping: bool = True) -> str:
    """A swept value as text: ``95,000,000`` (``95000000`` without ``grouping``), ``0.2``,
    ``true``, ``2025-06-30``."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e4:
            return f"{value:,.0f}" if grouping else f"{value:.0f}"
        return f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# --------------------------------------------------------------------------- the sweep


def _base_data(deal: Any) -> tuple[Any, Any, Path | None, LoadedDeal]:
    """The deal's YAML data, source map and path, validated once."""
    from ipabs.deal.load import LoadedDeal, _build
    from ipabs.deal.source import read_yaml

    if isinstance(deal, LoadedDeal):
        # the typed deal dumped as YAML would write it: the same keys, shorthands spelt out
        data = deal.spec.model_dump(by_alias=True, exclude_unset=True)
        return data, deal.source, deal.path, deal
    if not isinstance(deal, (str, Path)):
        raise IpabsError(f"sweep takes a deal file or a loaded deal, not {type(deal).__name__}")
    path = Path(deal)
    data, smap = read_yaml(path)
    return data, smap, path, _build(copy.deepcopy(data), smap, path)


def _risk_data(risk: Any) -> dict[str, Any]:
    from ipabs.deal.load import load_risk
    from ipabs.deal.risk import RiskModel

    if isinstance(risk, RiskModel):
        return risk.model_dump(by_alias=True, exclude_unset=True)
    if isinstance(risk, (str, Path)):
        model = load_risk(risk)  # located errors in the risk file itself
        return typing.cast("dict[str, Any]", model.model_dump(by_alias=True, exclude_unset=True))
    raise IpabsError(f"risk must be a risk file or a RiskModel, not {type(risk).__name__}")


def edit_deal(deal: LoadedDeal | str | Path, values: Mapping[str, Any]) -> LoadedDeal:
    """A copy of a deal with some parameters changed, validated as a deal file.

    Parameters
    ----------
    deal : LoadedDeal, str or Path
        A loaded deal or a deal file (left unchanged).
    values : mapping of str to Any
        Parameter path -> new value, applied in order with :func:`set_path`.

    Returns
    -------
    LoadedDeal

    Raises
    ------
    PathError
        If a path does not address a value of the deal.
    DealError
        If the changed deal is invalid; each issue names the field path.

    Examples
    --------
    >>> deal = edit_deal(
    ...     "scenarios/caohejing_ip_pledge.yaml",
    ...     {"tranches.senior.balance": "90m", "accounts.reserve.initial": "1m"},
    ... )  # doctest: +SKIP
    >>> deal.spec.tranches[0].balance  # doctest: +SKIP
    90000000.0
    """
    from ipabs.deal.load import _build

    data, smap, file, _ = _base_data(deal)
    for p, v in values.items():
        set_path(data, p, v)
    return _build(data, smap, file)


def _typed(spec: Any, concrete: tuple[Part, ...], raw: Any) -> Any:
    """The validated value at ``concrete`` (``"5%"`` -> 0.05), or ``raw`` where the typed deal
    has no plain value there (a shorthand, a nested section)."""
    from pydantic import BaseModel

    node = spec
    try:
        for part in concrete:
            if isinstance(node, BaseModel):
                name = next(n for n, f in type(node).model_fields.items() if part in (n, f.alias))
                node = getattr(node, name)
            else:
                node = node[part]
    except (StopIteration, KeyError, IndexError, TypeError):
        return raw
    return node if isinstance(node, (int, float, str, bool)) or node is None else raw


def _within(inner: str, outer: str) -> bool:
    """Whether field path ``inner`` is ``outer`` or lies inside it."""
    return inner == outer or inner.startswith(outer + ".") or inner.startswith(outer + "[")


def _invalid(
    exc: IpabsError,
    settings: dict[str, list[Any]],
    concrete: dict[str, tuple[Part, ...]],
    point: tuple[Any, ...],
    k: int,
    n: int,
    check: Callable[[dict[str, Any]], None],
) -> IpabsError:
    """An error of point ``k`` naming the settings it is about and the point. ``check`` builds
    the deal with some of the point's values (raising when invalid)."""
    issues = exc.issues if isinstance(exc, DealError) else []
    values = dict(zip(settings, point, strict=True))
    where_set = {p: format_path(concrete[p]) for p in settings}
    # a problem at the value itself, or inside it
    blamed = [
        p
        for p in settings
        if any(i.path and _within(i.path, where_set[p]) for i in issues)
        or (not issues and (p in str(exc) or where_set[p] in str(exc)))
    ]
    if not blamed:
        # a problem found above the values (a section, the deal): those that cause it alone
        above = [p for p in settings if any(_within(where_set[p], i.path) for i in issues if i.path)]
        candidates = above or list(settings)
        if len(candidates) > 1:
            for p in candidates:
                try:
                    check({p: values[p]})
                except IpabsError:
                    blamed.append(p)
        blamed = blamed or candidates  # else the values only together
    where = ", ".join(f"{p}={format_value(v)}" for p, v in values.items())
    detail = (
        "\n".join(
            f"  {i.path + ': ' if i.path else ''}{i.message}{f' ({i.hint})' if i.hint else ''}"
            for i in issues
        )
        if issues
        else f"  {exc}"
    )
    args = "; ".join(
        f"--set {p}={','.join(format_value(v, grouping=False) for v in settings[p])}" for p in blamed
    )
    shown = " with ".join(format_value(values[p]) for p in blamed)
    verb = "makes" if len(blamed) == 1 else "make"
    return IpabsError(f"{args}: {shown} {verb} the deal invalid at point {k} of {n} ({where}):\n{detail}")


@accepts_client
def sweep(
    deal: LoadedDeal | str | Path,
    settings: Mapping[str, Sequence[Any]],
    paths: int | None = None,
    seed: int = 0,
    *,
    scenario: str | None = None,
    risk: RiskModel | str | Path | None = None,
    threads: int | None = None,
    progress: bool | None = False,
    progress_stream: TextIO | None = None,
) -> pd.DataFrame:
    """Run a deal at every point of a grid of parameter values.

    Each point applies its values to the deal's YAML data with :func:`set_path`, validates the
    result as a deal file, and runs it: the Monte Carlo with ``paths`` paths (the same ``seed``
    at every point, so that differences between points are not sampling noise: common random
    numbers), or else the deterministic ``scenario``.

    Parameters
    ----------
    deal : LoadedDeal, str or Path
        A deal file or a loaded deal.
    settings : mapping of str to sequence
        Parameter path -> values (see :func:`set_path` for the path syntax); the grid is the
        Cartesian product, the last path varying fastest. Values are what YAML would give:
        numbers, or text such as ``"5%"`` and ``"12.5m"``.
    paths : int, optional
        Monte Carlo paths per point; None runs the deterministic scenario.
    seed : int
        Monte Carlo seed, the same at every point.
    scenario : str, optional
        Deterministic scenario (default: the deal's first); not used with ``paths``.
    risk : RiskModel, str or Path, optional
        A risk model or risk assumptions file replacing the deal's ``risk`` section (Monte
        Carlo only); ``risk.*`` paths then change it.
    threads : int, optional
        Monte Carlo threads (default: one per core); results do not depend on it.
    progress : bool or None
        Report points done on ``progress_stream`` (default standard error); None: only when
        it is a terminal.
    progress_stream : text stream, optional
    client : distributed.Client, optional
        Run the Monte Carlo paths on this Dask cluster (docs/cluster.md); results are the
        same, bit for bit.

    Returns
    -------
    pandas.DataFrame
        One row per (point, tranche): one column per swept path (named as given, holding the
        validated value, e.g. 0.05 for ``"5%"``), ``tranche``, then :data:`MC_METRICS` (Monte
        Carlo) or :data:`RUN_METRICS` (deterministic). ``attrs`` holds ``deal``, ``mode``
        (``"monte_carlo"`` or ``"deterministic"``), ``paths``, ``seed``, ``scenario`` and
        ``elapsed_seconds``.

    Raises
    ------
    IpabsError
        An unknown path (:class:`PathError`, listing the available keys), a value that makes the
        deal invalid (naming the setting and the point), a ``risk`` path without ``paths``, a
        ``scenarios`` path or ``scenario`` with ``paths``, an unknown scenario.
    DealError
        If the deal (or risk file) itself is invalid.

    Examples
    --------
    >>> from ipabs.analytics.sweep import sweep
    >>> table = sweep(
    ...     "scenarios/caohejing_ip_pledge.yaml",
    ...     {"risk.pd_multiplier": [1, 2, 3], "tranches.senior.balance": ["90m", "95m"]},
    ...     paths=20_000,
    ...     seed=1,
    ... )  # doctest: +SKIP
    >>> table.pivot_table(
    ...     index="risk.pd_multiplier", columns="tranches.senior.balance", values="expected_loss"
    ... )  # doctest: +SKIP
    """
    import pandas as pd

    from ipabs.deal.load import _build
    from ipabs.engine.compile import compile_deal

    start = time.perf_counter()
    grid = {str(p): list(v) for p, v in settings.items()}
    if not grid:
        raise IpabsError("give at least one parameter to sweep")
    for p, values in grid.items():
        if not values:
            raise IpabsError(f"{p}: give at least one value")
    if paths is not None and paths < 1:
        raise IpabsError(f"paths must be at least 1, got {paths}")
    mc = paths is not None
    data, smap, file, base = _base_data(deal)
    if mc and scenario is not None:
        raise IpabsError("a scenario is a deterministic run; the Monte Carlo (paths) uses the risk section")
    if not mc and risk is not None:
        raise IpabsError("a risk model drives the Monte Carlo only: give paths (--paths N)")
    if not mc and scenario is not None and scenario not in base.spec.scenarios:
        known = ", ".join(base.spec.scenarios)
        raise IpabsError(f"{smap.file}: no scenario {scenario!r}; known scenarios: {known}")
    if risk is not None:
        data["risk"] = _risk_data(risk)

    concrete = {p: resolve_path(data, p) for p in grid}
    if mc and data.get("risk") is None and not any(c[0] == "risk" for c in concrete.values()):
        raise IpabsError(f"{smap.file}: the deal has no `risk` section; add one or pass a risk file")
    seen: dict[tuple[Part, ...], str] = {}
    for p, c in concrete.items():
        if c in seen:
            raise IpabsError(f"{seen[c]} and {p} address the same value ({format_path(c)}); sweep it once")
        seen[c] = p
        if not mc and c[0] == "risk":
            raise IpabsError(f"{p}: the risk section drives the Monte Carlo only: give paths (--paths N)")
        if mc and c[0] == "scenarios":
            raise IpabsError(
                f"{p}: scenarios are deterministic runs; the Monte Carlo (paths) does not use them"
            )

    def build(values: dict[str, Any]) -> LoadedDeal:
        d = copy.deepcopy(data)
        for p, v in values.items():
            set_path(d, concrete[p], v)
        loaded = _build(d, smap, file)
        model = compile_deal(loaded)
        if mc:
            from ipabs.risk.model import compile_risk

            compile_risk(model)
        return loaded

    # build and compile every point before running any, so that a bad value fails at once
    points = list(itertools.product(*grid.values()))
    variants = []
    for k, point in enumerate(points, 1):
        try:
            variants.append(build(dict(zip(grid, point, strict=True))))
        except IpabsError as exc:
            raise _invalid(exc, grid, concrete, point, k, len(points), build) from None

    rows: list[dict[str, Any]] = []
    with ProgressBar(len(points), progress_stream, progress, what="points", description="sweep") as bar:
        for k, (point, loaded) in enumerate(zip(points, variants, strict=True), 1):
            columns = {p: _typed(loaded.spec, concrete[p], v) for p, v in zip(grid, point, strict=True)}
            rows.extend(_run_point(loaded, columns, paths, seed, scenario, threads))
            bar.update(k)
    frame = pd.DataFrame(rows, columns=[*grid, "tranche", *(MC_METRICS if mc else RUN_METRICS)])
    frame.attrs.update(
        {
            "deal": base.name,
            "mode": "monte_carlo" if mc else "deterministic",
            "paths": paths,
            "seed": seed if mc else None,
            "scenario": None if mc else (scenario or next(iter(base.spec.scenarios))),
            "points": len(points),
            "elapsed_seconds": time.perf_counter() - start,
        }
    )
    return frame


def _run_point(
    loaded: LoadedDeal,
    columns: dict[str, Any],
    paths: int | None,
    seed: int,
    scenario: str | None,
    threads: int | None,
) -> list[dict[str, Any]]:
    """The rows of one point: one per tranche."""
    rows = []
    if paths is not None:
        from ipabs.montecarlo import simulate

        result = simulate(loaded, paths=paths, seed=seed, threads=threads, progress=False)
        pool = result.pool_summary
        for r in result.tranche_summary:
            row = {**columns, "tranche": r["tranche"], **{m: r[m] for m in MC_METRICS[:7]}}
            row["pool_expected_loss"] = pool["expected_loss"]
            row["pool_expected_loss_se"] = pool["expected_loss_se"]
            row["pool_expected_default_rate"] = pool["expected_default_rate"]
            rows.append(row)
        return rows
    from ipabs.api import run

    summary = run(loaded, scenario=scenario).summary
    for name, r in summary.iterrows():
        rows.append({**columns, "tranche": name, **{m: float(r[m]) for m in RUN_METRICS}})
    return rows
