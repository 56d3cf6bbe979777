"""Schema of a snapshot file (``ipabs snapshot``): a deal's terms and results, recorded so that a
later run can be checked against them (see docs/regression.md).

A snapshot file is read like every other input: YAML is validated by :class:`SnapshotFile` and
pydantic's errors are translated into located issues by :func:`ipabs.deal.validate.translate`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError

from ipabs.deal.base import Model
from ipabs.deal.source import SourceMap, read_yaml
from ipabs.errors import DealError, Issue

FORMAT = 1
"""Version of the snapshot file layout written by this ipabs."""


def _date_text(value: Any) -> Any:
    """A date written unquoted in YAML is read as a date; keep it as ISO text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


Text = Annotated[str, BeforeValidator(_date_text)]
Figure = Annotated[float | Text | None, Field(union_mode="left_to_right")]
"""A recorded figure: a number, a date (as text) or null (none: a trigger that never fired)."""
Term = Annotated[Any, Field(description="A term's value, as in the deal file.")]


class Versions(Model):
    """Versions of the software that made the snapshot."""

    ipabs: Text = Field(description="ipabs version.")
    numba: Text = Field(description="numba version (the compiled kernels depend on it).")
    numpy: Text | None = Field(None, description="numpy version.")
    kernels: Text | None = Field(None, description="Hash of the simulation kernels' sources.")
    jit: bool | None = Field(None, description="Compiled kernels (false: the pure-Python twin).")


class ScenarioRecord(Model):
    """Deterministic results of one scenario."""

    tranches: dict[Text, dict[Text, Figure]] = Field(description="Per tranche: its summary figures.")
    triggers: dict[Text, dict[Text, Figure]] = Field(
        default_factory=dict, description="Per trigger: when it was first breached and active."
    )
    payment_dates: list[Text] = Field(default_factory=list, description="Payment date of each period.")
    periods: dict[Text, list[float]] = Field(
        default_factory=dict, description="Key per-period figures, one list per column."
    )


class Estimate(Model):
    """A Monte Carlo figure and its standard error."""

    estimate: float | None = Field(description="The estimate (null: none, e.g. no path repays).")
    se: float | None = Field(None, description="Its standard error (null when it has none).")


class MonteCarloRecord(Model):
    """Monte Carlo results and how they were drawn."""

    paths: int = Field(gt=0, description="Number of paths.")
    seed: int = Field(ge=0, description="Random seed.")
    importance_sampling: Text = Field("off", description="auto, on or off, as asked.")
    sampling: Text = Field("plain", description="The sampling used: plain or importance.")
    metrics: dict[Text, Estimate] = Field(description="`subject.metric` -> estimate and standard error.")


class SnapshotFile(Model):
    """A snapshot file written by ``ipabs snapshot``."""

    ipabs_snapshot: int = Field(description="Layout version of the file.")
    deal: Text = Field(description="The deal file, relative to the snapshot's folder.")
    risk: Text | None = Field(None, description="Risk assumptions file replacing the deal's `risk`.")
    fingerprint: Text = Field(description="Hash of the canonical deal terms and assumptions.")
    versions: Versions
    terms: dict[Text, Term] = Field(description="Every term by field path (tranches by name).")
    scenarios: dict[Text, ScenarioRecord] = Field(description="Deterministic results per scenario.")
    monte_carlo: MonteCarloRecord | None = Field(None, description="Monte Carlo results, when recorded.")


def load_snapshot_file(path: str | Path) -> tuple[SnapshotFile, SourceMap]:
    """Read and validate a snapshot file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SnapshotFile, SourceMap

    Raises
    ------
    DealError
        Every problem located as ``file:line:column: field: message``.
    """
    data, smap = read_yaml(path)
    if not isinstance(data, dict) or "ipabs_snapshot" not in data:
        raise DealError(
            [
                Issue(
                    smap.file,
                    1,
                    1,
                    "",
                    "not a snapshot file: it has no `ipabs_snapshot` key",
                    "write snapshots with `ipabs snapshot DEAL -o FILE`",
                )
            ]
        )
    from ipabs.deal.validate import translate

    try:
        spec = SnapshotFile.model_validate(data)
    except ValidationError as exc:
        raise DealError(translate(exc, data, smap, SnapshotFile)) from None
    if spec.ipabs_snapshot != FORMAT:
        line, col = smap.locate(("ipabs_snapshot",))
        raise DealError(
            [
                Issue(
                    smap.file,
                    line,
                    col,
                    "ipabs_snapshot",
                    f"snapshot layout {spec.ipabs_snapshot} is not known to this ipabs (it reads {FORMAT})",
                    "write the snapshot again with `ipabs check --update`",
                )
            ]
        )
    return spec, smap
