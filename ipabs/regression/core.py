"""Deal terms under regression: snapshots of a deal's terms and results, checks of a later run
against them, and the differences between two versions of a deal (see docs/regression.md).

A snapshot records the deal's terms (every value of the validated deal by field path, list
elements by name), their fingerprint, the deterministic results of every scenario and, when
asked, Monte Carlo metrics with their standard errors. A check runs the deal again and compares:
deterministic figures to :data:`REL_TOL` relative, Monte Carlo figures bit for bit under the
same engine (ipabs and numba versions) and within ``k`` combined standard errors otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipabs.deal.load import LoadedDeal, load_deal, load_risk
from ipabs.deal.snapshot import FORMAT, SnapshotFile, load_snapshot_file
from ipabs.errors import IpabsError

REL_TOL = 1e-9
"""Relative tolerance of deterministic figures (absolute for figures smaller than one)."""

DEFAULT_K = 4.0
"""Default number of combined standard errors a Monte Carlo figure may move across engines."""

TRANCHE_FIGURES = (
    "original_balance",
    "coupon",
    "interest_paid",
    "principal_paid",
    "residual_paid",
    "support_received",
    "principal_loss",
    "interest_shortfall",
    "loss",
    "loss_pct",
    "discounted_loss",
    "wal_years",
    "yield",
    "final_payment_date",
)
"""Per-tranche figures recorded for every scenario (columns of ``RunResult.summary``)."""

TRIGGER_FIGURES = ("first_breached_period", "first_active_period", "first_active_date", "periods_active")

TRANCHE_PERIOD_FIELDS = ("interest_paid", "principal_paid", "balance_end", "interest_shortfall")
"""Per-period tranche columns recorded (``<tranche>.<field>`` in ``RunResult.periods``)."""

# metrics.csv rows that describe the loss estimates' reliability, not figures to compare
_DIAGNOSTIC_METRICS = {
    "loss_paths",
    "loss_effective_paths",
    "loss_max_weight_share",
    "expected_loss_se_vs_plain",
    "probability_of_loss_se_vs_plain",
}

_NAME_KEYS = ("name", "id", "obligor")  # how a list element is named in a field path
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


# --------------------------------------------------------------------------- terms


def _element_names(items: list[Any]) -> tuple[list[str] | None, str]:
    """Names of a list's elements by the first key every element has and no two share, and
    that key (None when there is none: the elements are addressed by index)."""
    if not items or not all(isinstance(x, dict) for x in items):
        return None, ""
    for key in _NAME_KEYS:
        names = [x.get(key) for x in items]
        if all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names):
            return names, key
    return None, ""


def _flatten(node: Any, path: str, out: dict[str, Any]) -> None:
    if node is None:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            _flatten(value, f"{path}.{key}" if path else str(key), out)
    elif isinstance(node, list):
        if all(not isinstance(x, (dict, list)) for x in node):
            if node:
                out[path] = list(node)
            return
        names, key = _element_names(node)
        for i, item in enumerate(node):
            if names is None:
                _flatten(item, f"{path}[{i}]", out)
                continue
            name = names[i]
            part = f".{name}" if _PLAIN_NAME.match(name) else f"[{name}]"
            # the name is in the path already
            _flatten({k: v for k, v in item.items() if k != key}, path + part, out)
    else:
        out[path] = node


def deal_terms(deal: LoadedDeal | str | Path, risk: str | Path | None = None) -> dict[str, Any]:
    """Every term of a deal by field path, in canonical form.

    The terms are those of the validated deal (so ``12.5m`` and ``12500000``, a default written
    out or left out, and the order of a mapping's keys give the same terms); list elements are
    addressed by name where they have one (``tranches.senior.coupon``), else by index; values
    that are not set are left out. A loan tape counts as one term, the hash of its loans.

    Parameters
    ----------
    deal : LoadedDeal, str or Path
    risk : str or Path, optional
        Risk assumptions file replacing the deal's ``risk`` section.

    Returns
    -------
    dict
        Field path -> value (numbers, text, ISO dates, lists of plain values), sorted by path.
    """
    loaded = load_deal(deal) if isinstance(deal, (str, Path)) else deal
    data = loaded.spec.model_dump(mode="json", by_alias=True)
    if risk is not None:
        data["risk"] = load_risk(risk).model_dump(mode="json", by_alias=True)
    out: dict[str, Any] = {}
    _flatten(data, "", out)
    for pool, tape in sorted(loaded.tapes.items()):
        text = tape.frame.to_csv(index=False, float_format="%.17g")
        out[f"tapes.{pool}"] = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return dict(sorted(out.items()))


def fingerprint(terms: dict[str, Any]) -> str:
    """The hash of a deal's canonical terms (see :func:`deal_terms`).

    Returns
    -------
    str
        ``"sha256:<hex>"``; equal for two deals exactly when their terms are equal.
    """
    text = json.dumps(terms, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TermChange:
    """A term added, removed or changed between two versions of a deal.

    Attributes
    ----------
    path : str
        Field path, e.g. ``tranches.senior.coupon``.
    kind : str
        ``"added"``, ``"removed"`` or ``"changed"``.
    old, new
        The values before and after (None when absent).
    """

    path: str
    kind: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added ({_show(self.new)})"
        if self.kind == "removed":
            return f"{self.path}: removed (was {_show(self.old)})"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"path": self.path, "kind": self.kind, "old": _json(self.old), "new": _json(self.new)}


def term_changes(old: dict[str, Any], new: dict[str, Any]) -> list[TermChange]:
    """The terms added, removed and changed from ``old`` to ``new`` (see :func:`deal_terms`),
    in order of field path."""
    out = []
    for path in sorted(set(old) | set(new)):
        if path not in new:
            out.append(TermChange(path, "removed", old[path], None))
        elif path not in old:
            out.append(TermChange(path, "added", None, new[path]))
        elif not _same_term(old[path], new[path]):
            out.append(TermChange(path, "changed", old[path], new[path]))
    return out


def _same_term(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))
        except (TypeError, ValueError):
            return False
    return bool(a == b)


# --------------------------------------------------------------------------- results


def _value(v: Any) -> Any:
    """A figure as recorded: float, int, ISO date text or None."""
    import datetime as dt

    if v is None:
        return None
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()[:10]
    if hasattr(v, "isoformat"):  # pandas Timestamp
        return v.isoformat()[:10]
    import pandas as pd

    with contextlib.suppress(TypeError, ValueError):  # pd.isna refuses some values: not missing
        if pd.isna(v):
            return None if not isinstance(v, float) else float("nan")
    if isinstance(v, (bool, str)):
        return v
    if float(v) == int(float(v)) and not isinstance(v, float) and abs(float(v)) < 2**53:
        return int(v)
    return float(v)


def scenario_record(model: Any, scenario: str) -> dict[str, Any]:
    """The deterministic results of one scenario as recorded in a snapshot."""
    from ipabs.api import run

    result = run(model, scenario=scenario)
    tranches = {
        str(name): {f: _value(row[f]) for f in TRANCHE_FIGURES} for name, row in result.summary.iterrows()
    }
    triggers = {
        str(r["trigger"]): {f: _value(r[f]) for f in TRIGGER_FIGURES} for _, r in result.triggers.iterrows()
    }
    p = result.periods
    columns = ["deal.collections", "deal.payments"]
    columns += [f"{t}.{f}" for t in tranches for f in TRANCHE_PERIOD_FIELDS]
    columns += [f"{a}.balance_end" for a in model.account_names]
    columns += [f"{s}.draw" for s in model.support_names]
    return {
        "tranches": tranches,
        "triggers": triggers,
        "payment_dates": [d.isoformat()[:10] for d in p["payment_date"]],
        "periods": {c: [float(x) for x in p[c]] for c in columns if c in p},
    }


def mc_record(
    model: Any, paths: int, seed: int, importance_sampling: str, risk: Any, threads: int | None
) -> dict:
    """Monte Carlo metrics as recorded in a snapshot (see :func:`ipabs.simulate`)."""
    from ipabs.montecarlo import simulate

    mode = {"auto": "auto", "on": True, "off": False}[importance_sampling]
    result = simulate(model, paths=paths, seed=seed, risk=risk, threads=threads, importance_sampling=mode)
    metrics: dict[str, Any] = {}
    for r in result.metrics().to_dict("records"):
        if r["metric"] in _DIAGNOSTIC_METRICS:
            continue
        se = float(r["se"])
        metrics[f"{r['subject']}.{r['metric']}"] = {
            "estimate": float(r["estimate"]),
            "se": None if math.isnan(se) else se,
        }
    return {
        "paths": int(paths),
        "seed": int(seed),
        "importance_sampling": importance_sampling,
        "sampling": result.sampling.method if result.sampling is not None else "plain",
        "metrics": metrics,
    }


def versions() -> dict[str, Any]:
    """Versions of ipabs, numba and numpy, the hash of the kernel sources and whether they are
    compiled (recorded in snapshots)."""
    import numba
    import numpy

    from ipabs._jit import source_hash
    from ipabs._version import __version__

    return {
        "ipabs": __version__,
        "numba": numba.__version__,
        "numpy": numpy.__version__,
        "kernels": source_hash(),
        "jit": not numba.config.DISABLE_JIT,
    }


ENGINE_KEYS = ("ipabs", "numba", "kernels", "jit")
"""What makes an engine: the same values give Monte Carlo figures equal bit for bit (the
pure-Python twin agrees with the compiled kernels only to rounding)."""


def _same_engine(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs used the same engine (see :data:`ENGINE_KEYS`)."""
    return all(a.get(k) == b.get(k) for k in ENGINE_KEYS)


# --------------------------------------------------------------------------- snapshot


def snapshot(
    deal: str | Path,
    out: str | Path | None = None,
    *,
    risk: str | Path | None = None,
    paths: int | None = None,
    seed: int = 0,
    importance_sampling: str = "auto",
    threads: int | None = None,
) -> dict[str, Any]:
    """Record a deal's terms and results in a snapshot (written to ``out`` when given).

    Parameters
    ----------
    deal : str or Path
        The deal file.
    out : str or Path, optional
        Snapshot file to write (YAML). The deal (and risk) file is recorded relative to its folder.
    risk : str or Path, optional
        Risk assumptions file replacing the deal's ``risk`` section.
    paths : int, optional
        Monte Carlo paths; without, no Monte Carlo is recorded.
    seed : int
        Monte Carlo seed.
    importance_sampling : {"auto", "on", "off"}
        As ``ipabs mc --importance-sampling``.
    threads : int, optional
        Monte Carlo threads (the results do not depend on it).

    Returns
    -------
    dict
        The snapshot, laid out as the file.

    Examples
    --------
    >>> import ipabs
    >>> ipabs.snapshot("deal.yaml", "deal.snapshot.yaml", paths=2_000, seed=1)  # doctest: +SKIP
    """
    from ipabs.engine.compile import compile_deal

    if importance_sampling not in ("auto", "on", "off"):
        raise IpabsError(f"importance_sampling must be auto, on or off, got {importance_sampling!r}")
    loaded = load_deal(deal)
    terms = deal_terms(loaded, risk)
    model = compile_deal(loaded)
    where = Path(out).parent if out is not None else None
    record: dict[str, Any] = {
        "ipabs_snapshot": FORMAT,
        "deal": _relative(deal, where),
        "risk": None if risk is None else _relative(risk, where),
        "fingerprint": fingerprint(terms),
        "versions": versions(),
        "terms": terms,
        "scenarios": {name: scenario_record(model, name) for name in sorted(loaded.spec.scenarios)},
        "monte_carlo": None,
    }
    if paths is not None:
        risk_model = load_risk(risk) if risk is not None else None
        record["monte_carlo"] = mc_record(model, paths, seed, importance_sampling, risk_model, threads)
    if out is not None:
        write_snapshot(record, out)
    return record


def _relative(path: str | Path, folder: Path | None) -> str:
    if folder is None:
        return Path(path).as_posix()
    return Path(os.path.relpath(Path(path).resolve(), folder.resolve())).as_posix()


def dump_yaml(record: dict[str, Any]) -> str:
    """A snapshot as YAML text: keys in the record's order, one value per line, floats exact."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        """A safe dumper of its own, so the representers below stay local to snapshots."""

    def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        # lists of plain values in a term are short: one line; per-period columns: one per line
        flow = len(data) <= 8 and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _list)
    return yaml.dump(
        record, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )


def write_snapshot(record: dict[str, Any], out: str | Path) -> Path:
    """Write a snapshot file (atomically: a failed write leaves the old file)."""
    target = Path(out)
    text = "# ipabs snapshot: check with `ipabs check`; rewrite with `ipabs check --update`\n"
    text += dump_yaml(record)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise IpabsError(f"{out}: cannot write the snapshot ({exc.strerror or exc})") from None
    return target


# --------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Moved:
    """A figure that moved since the snapshot.

    Attributes
    ----------
    figure : str
        Which figure, e.g. ``senior.interest_paid`` or ``periods.senior.balance_end[3]``.
    old, new
        The recorded and the new value (None when absent).
    note : str
        By how much (absolute and relative, or in standard errors).
    """

    figure: str
    old: Any
    new: Any
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.figure}: {_show(self.old)} -> {_show(self.new)}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"figure": self.figure, "old": _json(self.old), "new": _json(self.new), "note": self.note}


@dataclass
class CheckResult:
    """The outcome of checking one snapshot file.

    Attributes
    ----------
    file : str
        The snapshot file.
    terms : list of TermChange
        Terms changed since the snapshot.
    parts : dict
        Part -> figures that moved; parts are ``scenario <name>`` and ``monte carlo``.
    same_engine : bool
        Whether the Monte Carlo ran on the engine of the snapshot (compared bit for bit).
    k : float
        Standard errors allowed across engines.
    updated : bool
        Whether the snapshot was rewritten (``update=True``).
    """

    file: str
    terms: list[TermChange] = field(default_factory=list)
    parts: dict[str, list[Moved]] = field(default_factory=dict)
    same_engine: bool = True
    k: float = DEFAULT_K
    updated: bool = False

    @property
    def ok(self) -> bool:
        """No term changed and no figure moved."""
        return not self.terms and not any(self.parts.values())

    def moved(self) -> list[Moved]:
        """Every figure that moved."""
        return [m for ms in self.parts.values() for m in ms]

    def part_text(self, part: str) -> str:
        """What moved in one part (``terms``, ``scenario NAME`` or ``monte carlo``)."""
        if part == "terms":
            return "\n".join(f"  {t}" for t in self.terms)
        how = ""
        if part == "monte carlo":
            how = (
                " (same engine: compared bit for bit)"
                if self.same_engine
                else f" (another engine: compared within {self.k:g} standard errors)"
            )
        return f"{part}{how}:\n" + "\n".join(f"  {m}" for m in self.parts.get(part, []))

    def text(self) -> str:
        """A readable account: ok, or which terms changed and which figures moved by how much."""
        n = len(self.moved())
        status = "updated" if self.updated else ("ok" if self.ok else "FAILED")
        head = f"{self.file}: {status}"
        if self.ok:
            parts = ", ".join(self.parts)
            return f"{head} ({parts})"
        head += f" ({len(self.terms)} term(s) changed, {n} figure(s) moved)"
        lines = [head]
        if self.terms:
            lines.append("terms changed since the snapshot:")
            lines.append(self.part_text("terms"))
        for part, moved in self.parts.items():
            if moved:
                lines.append(self.part_text(part))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "file": self.file,
            "ok": self.ok,
            "updated": self.updated,
            "same_engine": self.same_engine,
            "terms": [t.to_dict() for t in self.terms],
            "moved": {part: [m.to_dict() for m in ms] for part, ms in self.parts.items()},
        }


def _close(a: Any, b: Any) -> bool:
    """Deterministic figures agree: equal text or null, or numbers within :data:`REL_TOL`."""
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= REL_TOL * max(abs(a), abs(b), 1.0)


def _delta_note(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        d = float(b) - float(a)
        if math.isfinite(d):
            rel = f", {d / abs(float(a)):+.3%}" if float(a) != 0 else ""
            return f"{d:+.6g}{rel}"
    return ""


def compare_scenario(old: dict[str, Any], new: dict[str, Any]) -> list[Moved]:
    """Figures of one scenario's record that moved (see :func:`scenario_record`)."""
    out: list[Moved] = []
    for group in ("tranches", "triggers"):
        o, n = old.get(group, {}), new.get(group, {})
        for name in list(o) + [x for x in n if x not in o]:
            if name not in n:
                out.append(Moved(f"{name}", "recorded", None, f"no {group[:-1]} {name} any more"))
                continue
            if name not in o:
                out.append(Moved(f"{name}", None, "new", f"{group[:-1]} not in the snapshot"))
                continue
            for f in list(o[name]) + [x for x in n[name] if x not in o[name]]:
                a, b = o[name].get(f), n[name].get(f)
                if not _close(a, b):
                    out.append(Moved(f"{name}.{f}", a, b, _delta_note(a, b)))
    od, nd = old.get("payment_dates", []), new.get("payment_dates", [])
    if od != nd:
        out.append(Moved("payment_dates", f"{len(od)} periods", f"{len(nd)} periods", "the dates changed"))
    op, np_ = old.get("periods", {}), new.get("periods", {})
    for col in list(op) + [c for c in np_ if c not in op]:
        a, b = op.get(col), np_.get(col)
        if a is None or b is None:
            out.append(Moved(f"periods.{col}", a and "recorded", b and "new", "column added or removed"))
            continue
        for t in range(max(len(a), len(b))):
            x = a[t] if t < len(a) else None
            y = b[t] if t < len(b) else None
            if not _close(x, y):
                # the first period that moved says when; the rest follow from it
                out.append(Moved(f"periods.{col}[period {t + 1}]", x, y, _delta_note(x, y)))
                break
    return out


def compare_monte_carlo(
    old: dict[str, Any], new: dict[str, Any], *, same_engine: bool, k: float = DEFAULT_K
) -> list[Moved]:
    """Monte Carlo figures that moved: any difference under the same engine; otherwise more
    than ``k`` times the combined standard error ``sqrt(se_old^2 + se_new^2)``."""
    out: list[Moved] = []
    om, nm = old.get("metrics", {}), new.get("metrics", {})
    for key in list(om) + [x for x in nm if x not in om]:
        if key not in nm or key not in om:
            out.append(
                Moved(
                    key, om.get(key, {}).get("estimate"), nm.get(key, {}).get("estimate"), "added or removed"
                )
            )
            continue
        a, b = om[key].get("estimate"), nm[key].get("estimate")
        sa, sb = om[key].get("se"), nm[key].get("se")
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
            if not _close(a, b):
                out.append(Moved(key, a, b))
            continue
        if same_engine:
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                out.append(Moved(key, a, b, _delta_note(a, b) + "; the same engine must agree bit for bit"))
            continue
        se = math.hypot(sa or 0.0, sb or 0.0)
        d = abs(b - a)
        if se > 0:
            if not d <= k * se:
                out.append(Moved(key, a, b, f"{(b - a) / se:+.2f} standard errors; allowed {k:g}"))
        elif not _close(a, b):
            out.append(Moved(key, a, b, _delta_note(a, b) + "; no standard error"))
    for key in ("paths", "seed", "importance_sampling", "sampling"):
        if old.get(key) != new.get(key):
            out.append(Moved(key, old.get(key), new.get(key)))
    return out


def _resolve(spec: SnapshotFile, file: Path) -> tuple[Path, Path | None]:
    base = file.parent
    deal = base / spec.deal
    risk = base / spec.risk if spec.risk is not None else None
    return deal, risk


def check_file(
    file: str | Path, *, k: float = DEFAULT_K, update: bool = False, threads: int | None = None
) -> CheckResult:
    """Run the deal of one snapshot file again and compare (see :func:`check`)."""
    from ipabs.engine.compile import compile_deal

    path = Path(file)
    spec, _ = load_snapshot_file(path)
    deal_path, risk_path = _resolve(spec, path)
    loaded = load_deal(deal_path)
    terms = deal_terms(loaded, risk_path)
    result = CheckResult(str(file), k=k)
    result.terms = term_changes(spec.terms, terms) if fingerprint(terms) != spec.fingerprint else []
    model = compile_deal(loaded)
    now = versions()
    new_scenarios = {}
    names = list(spec.scenarios) + [s for s in sorted(loaded.spec.scenarios) if s not in spec.scenarios]
    for name in names:
        part = f"scenario {name}"
        if name not in loaded.spec.scenarios:
            result.parts[part] = [
                Moved("scenario", "recorded", None, "the deal has no such scenario any more")
            ]
            continue
        record = scenario_record(model, name)
        new_scenarios[name] = record
        if name not in spec.scenarios:
            result.parts[part] = [Moved("scenario", None, "new", "not in the snapshot")]
            continue
        old = spec.scenarios[name].model_dump()
        result.parts[part] = compare_scenario(old, record)
    mc = None
    if spec.monte_carlo is not None:
        m = spec.monte_carlo
        risk_model = load_risk(risk_path) if risk_path is not None else None
        mc = mc_record(model, m.paths, m.seed, m.importance_sampling, risk_model, threads)
        result.same_engine = _same_engine(spec.versions.model_dump(), now)
        result.parts["monte carlo"] = compare_monte_carlo(
            m.model_dump(), mc, same_engine=result.same_engine, k=k
        )
    if update:
        record = {
            "ipabs_snapshot": FORMAT,
            "deal": spec.deal,
            "risk": spec.risk,
            "fingerprint": fingerprint(terms),
            "versions": now,
            "terms": terms,
            "scenarios": {n: new_scenarios[n] for n in sorted(new_scenarios)},
            "monte_carlo": mc,
        }
        write_snapshot(record, path)
        result.updated = True
    return result


def check(
    files: str | Path | Iterable[str | Path],
    *,
    k: float = DEFAULT_K,
    update: bool = False,
    threads: int | None = None,
) -> list[CheckResult]:
    """Run the deals of snapshot files again and compare with what they recorded.

    Deterministic figures must agree to :data:`REL_TOL` relative; Monte Carlo figures bit for
    bit when ipabs and numba are the versions of the snapshot, else within ``k`` times
    ``sqrt(se_old^2 + se_new^2)``. Terms changed since the snapshot are listed by field path
    and fail the check too (a snapshot records one version of the terms).

    Parameters
    ----------
    files : path or iterable of paths
        Snapshot files.
    k : float
        Standard errors allowed across engines (default 4).
    update : bool
        Rewrite each snapshot with the new terms and results (what moved is still reported).
    threads : int, optional
        Monte Carlo threads.

    Returns
    -------
    list of CheckResult
        One per file; ``result.ok`` says whether it holds.

    Examples
    --------
    >>> import ipabs
    >>> [r.ok for r in ipabs.check(["deal.snapshot.yaml"])]  # doctest: +SKIP
    [True]
    """
    if not k > 0 or not math.isfinite(k):
        raise IpabsError(f"k must be a positive number of standard errors, got {k}")
    if isinstance(files, (str, Path)):
        files = [files]
    return [check_file(f, k=k, update=update, threads=threads) for f in files]


# --------------------------------------------------------------------------- diff


@dataclass
class DiffResult:
    """Two versions of a deal side by side.

    Attributes
    ----------
    a, b : str
        The deal files.
    terms : list of TermChange
        Terms added, removed and changed from ``a`` to ``b``.
    deterministic : list of dict
        Per scenario (in both), tranche and figure: ``a``, ``b`` and ``delta``.
    monte_carlo : list of dict
        Per metric: ``a``, ``a_se``, ``b``, ``b_se``, ``delta`` and, where the paths are paired
        (common random numbers), ``delta_se``; empty without ``paths``.
    paths, seed : int or None
    """

    a: str
    b: str
    terms: list[TermChange]
    deterministic: list[dict[str, Any]]
    monte_carlo: list[dict[str, Any]] = field(default_factory=list)
    paths: int | None = None
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "a": self.a,
            "b": self.b,
            "terms": [t.to_dict() for t in self.terms],
            "deterministic": [{k: _json(v) for k, v in r.items()} for r in self.deterministic],
            "monte_carlo": [{k: _json(v) for k, v in r.items()} for r in self.monte_carlo],
            "paths": self.paths,
            "seed": self.seed,
        }


DIFF_FIGURES = (
    "interest_paid",
    "principal_paid",
    "loss",
    "loss_pct",
    "wal_years",
    "yield",
    "final_payment_date",
)
"""Per-tranche deterministic figures shown by :func:`diff`."""

DIFF_MC_METRICS = ("expected_loss", "probability_of_loss", "expected_wal_years", "mean_yield")
"""Per-tranche Monte Carlo metrics shown by :func:`diff` (and the pool's expected loss)."""


def diff(
    a: str | Path,
    b: str | Path,
    *,
    paths: int | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> DiffResult:
    """The terms that differ between two deal files and what they do to the numbers.

    Parameters
    ----------
    a, b : str or Path
        The deal files (``a`` the reference).
    paths : int, optional
        Also run the Monte Carlo with this many paths, both deals on the same random numbers
        (plain sampling, the same ``seed``), so that the deltas are the change, not noise.
    seed : int
    threads : int, optional

    Returns
    -------
    DiffResult

    Examples
    --------
    >>> import ipabs
    >>> d = ipabs.diff("deal_v1.yaml", "deal_v2.yaml")  # doctest: +SKIP
    >>> [str(t) for t in d.terms]  # doctest: +SKIP
    ['tranches.senior.coupon: 0.032 -> 0.035']
    """
    from ipabs.api import run
    from ipabs.engine.compile import compile_deal

    da, db = load_deal(a), load_deal(b)
    terms = term_changes(deal_terms(da), deal_terms(db))
    ma, mb = compile_deal(da), compile_deal(db)
    rows: list[dict[str, Any]] = []
    for scenario in [s for s in da.spec.scenarios if s in db.spec.scenarios]:
        ra, rb = run(ma, scenario=scenario).summary, run(mb, scenario=scenario).summary
        for tranche in [t for t in ra.index if t in rb.index]:
            for f in DIFF_FIGURES:
                x, y = _value(ra.loc[tranche, f]), _value(rb.loc[tranche, f])
                delta = None
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    delta = float(y) - float(x)
                rows.append(
                    {
                        "scenario": scenario,
                        "tranche": str(tranche),
                        "figure": f,
                        "a": x,
                        "b": y,
                        "delta": delta,
                    }
                )
    mc: list[dict[str, Any]] = []
    if paths is not None:
        mc = _diff_monte_carlo(ma, mb, paths, seed, threads)
    return DiffResult(str(a), str(b), terms, rows, mc, paths, seed if paths is not None else None)


def _diff_monte_carlo(ma: Any, mb: Any, paths: int, seed: int, threads: int | None) -> list[dict[str, Any]]:
    """Monte Carlo metrics of both deals on common random numbers, with the standard error of
    each paired difference where the figure is a mean over paths."""
    import numpy as np

    from ipabs.analytics import metrics as m
    from ipabs.analytics.importance import LOSS_EPS
    from ipabs.montecarlo import simulate
    from ipabs.risk.montecarlo_numba_fns import O_LOSS, P_LOSS_RATE

    sa = simulate(ma, paths=paths, seed=seed, threads=threads)
    sb = simulate(mb, paths=paths, seed=seed, threads=threads, sampling=sa.sampling)
    ta, tb = sa.tranches, sb.tranches
    rows: list[dict[str, Any]] = []

    def add(subject: str, metric: str, x: float, xs: float, y: float, ys: float, dse: float | None) -> None:
        rows.append(
            {
                "subject": subject,
                "metric": metric,
                "a": x,
                "a_se": xs,
                "b": y,
                "b_se": ys,
                "delta": y - x,
                "delta_se": dse,
            }
        )

    for name in [t for t in ta.index if t in tb.index]:
        i, j = sa.tranche_names.index(name), sb.tranche_names.index(name)
        la = sa.tranche_outcomes[:, i, O_LOSS] / sa.original_balances[i]
        lb = sb.tranche_outcomes[:, j, O_LOSS] / sb.original_balances[j]
        paired = {
            "expected_loss": m.mean(lb - la).se,
            "probability_of_loss": m.mean(
                (sb.tranche_outcomes[:, j, O_LOSS] > LOSS_EPS).astype(np.float64)
                - (sa.tranche_outcomes[:, i, O_LOSS] > LOSS_EPS).astype(np.float64)
            ).se,
        }
        se_col = {
            "expected_loss": "expected_loss_se",
            "probability_of_loss": "probability_of_loss_se",
            "expected_wal_years": "expected_wal_se",
            "mean_yield": "mean_yield_se",
        }
        for metric in DIFF_MC_METRICS:
            add(
                str(name),
                metric,
                float(ta.loc[name, metric]),
                float(ta.loc[name, se_col[metric]]),
                float(tb.loc[name, metric]),
                float(tb.loc[name, se_col[metric]]),
                paired.get(metric),
            )
    pa, pb = sa.pool_summary, sb.pool_summary
    dse = m.mean(sb.pool_outcomes[:, P_LOSS_RATE] - sa.pool_outcomes[:, P_LOSS_RATE]).se
    add(
        "pool",
        "expected_loss",
        pa["expected_loss"],
        pa["expected_loss_se"],
        pb["expected_loss"],
        pb["expected_loss_se"],
        dse,
    )
    return rows


# --------------------------------------------------------------------------- formatting


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def _json(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def snapshot_files(paths: Sequence[str | Path]) -> list[Path]:
    """Snapshot files named by ``paths``: files as given; folders searched for
    ``*.snapshot.yaml``."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(p.rglob("*.snapshot.yaml"))
        else:
            out.append(p)
    return out
