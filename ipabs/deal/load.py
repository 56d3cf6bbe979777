"""Load a deal file: parse, validate, cross-check, read the loan tapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ipabs.deal.base import Model
from ipabs.deal.risk import RiskModel
from ipabs.deal.schema import Deal
from ipabs.deal.source import SourceMap, parse_yaml, read_yaml
from ipabs.deal.validate import translate
from ipabs.errors import DealError, Issue


class _RiskFile(Model):
    """A risk assumptions file."""

    risk: RiskModel


@dataclass(frozen=True)
class LoadedDeal:
    """A validated deal with where it came from.

    Attributes
    ----------
    spec : Deal
        The typed deal.
    source : SourceMap
        Positions of every value in the file (for later located errors).
    path : Path or None
        The deal file (None when parsed from a string).
    tapes : dict
        Pool name -> :class:`ipabs.deal.tape.LoanTape` for pools with a ``tape``.
    warnings : tuple of Issue
        Located problems that do not stop a run but probably deserve a look (e.g. recoveries
        that fall after the legal final date), for the commands to print.
    """

    spec: Deal
    source: SourceMap
    path: Path | None = None
    tapes: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[Issue, ...] = ()

    @property
    def name(self) -> str:
        """Deal name."""
        return self.spec.deal.name


def _build(data: Any, smap: SourceMap, path: Path | None) -> LoadedDeal:
    if not isinstance(data, dict):
        raise DealError(
            [
                Issue(
                    smap.file,
                    1,
                    1,
                    "",
                    "a deal file must be a mapping of sections",
                    "start with `deal:`, `pools:`, `tranches:`, `waterfalls:`",
                )
            ]
        )
    try:
        spec = Deal.model_validate(data)
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, Deal)) from None

    from ipabs.deal.crosscheck import calendar_warnings, cross_check, recovery_warnings

    base = path.parent if path is not None else Path.cwd()
    tapes: dict[str, Any] = {}
    if any(pool.tape is not None for pool in spec.pools):
        from ipabs.deal.tape import read_tapes  # pandas and pyarrow: only when needed

        tapes = read_tapes(spec, smap, base)
    issues = cross_check(spec, smap, tapes)
    if issues:
        raise DealError(issues)
    warnings = [*recovery_warnings(spec, smap, tapes), *calendar_warnings(spec, smap)]
    return LoadedDeal(spec, smap, path, tapes, tuple(warnings))


def load_deal(path: str | Path) -> LoadedDeal:
    """Read and validate a deal file.

    Parameters
    ----------
    path : str or Path
        YAML deal file.

    Returns
    -------
    LoadedDeal

    Raises
    ------
    DealError
        With every problem found, each located as ``file:line:column`` with its field path.

    Examples
    --------
    >>> deal = ipabs.load_deal("scenarios/caohejing_ip_pledge.yaml")  # doctest: +SKIP
    >>> deal.name  # doctest: +SKIP
    'Caohejing-like IP-pledge loans 2024'
    """
    p = Path(path)
    data, smap = read_yaml(p)
    return _build(data, smap, p)


def parse_deal(text: str, file: str = "<string>", base_dir: str | Path | None = None) -> LoadedDeal:
    """Validate a deal given as YAML text (see :func:`load_deal`).

    ``base_dir`` is where relative loan-tape paths are resolved (default: current directory).
    """
    data, smap = parse_yaml(text, file)
    path = Path(base_dir) / file if base_dir is not None else None
    return _build(data, smap, path)


def load_risk(path: str | Path) -> Any:
    """Read a risk assumptions file: a YAML mapping with one key, ``risk``, laid out as the
    deal's ``risk`` section. Used to run one deal under several risk views.

    Returns
    -------
    RiskModel

    Raises
    ------
    DealError
        With located problems, as for a deal file.
    """
    data, smap = read_yaml(path)
    if not isinstance(data, dict) or set(data) != {"risk"}:
        raise DealError(
            [
                Issue(
                    smap.file,
                    1,
                    1,
                    "",
                    "a risk file is a mapping with one key, `risk`",
                    "write `risk:` and indent the risk model under it",
                )
            ]
        )

    try:
        return _RiskFile.model_validate(data).risk
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, _RiskFile)) from None


def risk_file_warnings(deal: LoadedDeal, path: str | Path) -> list[Issue]:
    """Warnings about a risk assumptions file (already loaded with :func:`load_risk`) used with
    ``deal``: recoveries that its lag pushes past the deal's legal final date.

    Returns
    -------
    list of Issue
        Located in the risk file.
    """
    from ipabs.deal.crosscheck import recovery_warnings

    data, smap = read_yaml(path)
    risk = _RiskFile.model_validate(data).risk
    return [
        w for w in recovery_warnings(deal.spec, smap, deal.tapes, risk, smap) if w.path.startswith("risk")
    ]
