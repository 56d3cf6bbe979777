"""Output helpers shared by deterministic and Monte Carlo results: JSON-ready values and
files written whole or not at all."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_value(v: Any) -> Any:
    """A value as JSON can hold it: non-finite floats, missing dates and missing nullable
    integers become None, NumPy scalars plain numbers, dates ``YYYY-MM-DD``."""
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if type(v).__name__ in ("NaTType", "NAType"):  # a missing date, a missing nullable integer
        return None
    if isinstance(v, dt.date):
        return v.isoformat()[:10]
    return v


def write_frame(frame: Any, target: Path) -> Path:
    """Write a DataFrame as CSV or Parquet (by the suffix of ``target``) through a temporary
    file renamed into place, so a failure never leaves half a file."""
    tmp = target.with_name(f".{target.name}.tmp")
    if target.suffix == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    tmp.replace(target)
    return target
