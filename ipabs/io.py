"""Output helpers shared by every command that writes: JSON-ready values, files and sets of
files written whole or not at all, and the checks made before any work starts (an output
folder that can be written, arrays that fit in memory)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ipabs.errors import IpabsError


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
    file renamed into place, so a failure or an interruption never leaves half a file nor the
    temporary."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if target.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(target)
    except BaseException:  # KeyboardInterrupt and a terminating signal too
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def write_tables(out_dir: str | Path, files: Mapping[str, Any]) -> list[Path]:
    """Write a set of tables into ``out_dir`` all together or not at all.

    Every file is written into a temporary folder next to ``out_dir``, which then takes its
    place (or, when ``out_dir`` already holds files, whose files replace theirs one by one,
    with SIGINT and SIGTERM held off until all are in place). On any failure or interruption
    the temporary folder is removed: no partial set and no temporaries are left.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created, with its parents, if needed).
    files : mapping
        Relative path (``"paths.parquet"``, ``"path_3/periods.csv"``) -> DataFrame, whose
        suffix chooses CSV or Parquet; or -> ``bytes`` (written as they are), ``str`` (written
        as UTF-8 text) or a function of the target path that writes the file (a workbook's
        ``save``, say).

    Returns
    -------
    list of Path
        The files written, under ``out_dir``.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, frame in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_one(frame, target)
        with _signals_held():
            _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / name for name in files]


def _write_one(content: Any, target: Path) -> None:
    """Write one entry of :func:`write_tables`: bytes, text, a writer function or a table."""
    if isinstance(content, bytes):
        target.write_bytes(content)
    elif isinstance(content, str):
        target.write_text(content, encoding="utf-8")
    elif callable(content):
        content(target)
    elif target.suffix == ".csv":
        content.to_csv(target, index=False)
    else:
        content.to_parquet(target, index=False)


def _move_into_place(tmp: Path, out: Path) -> None:
    if not out.exists():
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a plain folder is wanted
        tmp.rename(out)
        return
    if not out.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory", str(out))
    for entry in sorted(tmp.iterdir()):
        target = out / entry.name
        if entry.is_dir() and target.is_dir():  # a kept path's folder from an earlier run
            old = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", suffix=".old", dir=out))
            target.rename(old / entry.name)
            entry.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            entry.replace(target)
    tmp.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM while files are renamed into place, so that an interruption
    cannot leave half a set: a signal that arrives meanwhile is handled, as it would have
    been, once the set is complete. (Blocking the signals in this thread would not do: any
    other thread may receive them.) Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum: int, frame: Any) -> None:
        pending.append(signum)

    previous = {s: signal.signal(s, record) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(pending):
            handler = previous[s]
            if callable(handler):
                handler(s, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(s)


def check_out_dir(out_dir: str | Path, flag: str = "--out") -> Path:
    """Check, before any work, that output can be written into folder ``out_dir``.

    Raises
    ------
    IpabsError
        When ``out_dir`` (or a parent of it) is a file, or no folder can be created there.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IpabsError(f"{flag} {out_dir}: exists and is not a directory; give a directory")
    _check_writable(out if out.is_dir() else out.parent, flag, str(out_dir))
    return out


def check_out_file(target: str | Path, flag: str = "--out") -> Path:
    """Check, before any work, that file ``target`` can be written (its folder exists and is
    writable, and it is not a folder).

    Raises
    ------
    IpabsError
    """
    path = Path(target)
    if path.is_dir():
        raise IpabsError(f"{flag} {target}: is a directory; give a file name")
    if not path.parent.is_dir():
        raise IpabsError(f"{flag} {target}: directory {path.parent} does not exist")
    _check_writable(path.parent, flag, str(target))
    return path


def _check_writable(folder: Path, flag: str, given: str) -> None:
    """Create and remove a temporary folder in ``folder`` (or its nearest existing parent):
    the one test of writability that holds for every user and file system."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise IpabsError(f"{flag} {given}: {probe} is a file, not a directory; give a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ipabs-write-test.", dir=probe))
    except OSError as exc:
        raise IpabsError(
            f"{flag} {given}: cannot write in {probe} ({exc.strerror or exc}); give a folder you can write to"
        ) from None


def available_memory() -> int | None:
    """Bytes of memory available to new allocations without swapping (Linux ``MemAvailable``;
    the free physical memory elsewhere), or None when unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(needed: float, what: str, hint: str) -> None:
    """Refuse work whose arrays cannot fit in the memory available.

    Parameters
    ----------
    needed : float
        Bytes the work will allocate.
    what : str
        What asks for it (``"--paths 1,000,000,000"``), for the message.
    hint : str
        What to do instead.

    Raises
    ------
    IpabsError
        When ``needed`` exceeds the available memory.
    """
    available = available_memory()
    if available is not None and needed > available:
        raise IpabsError(
            f"{what} needs about {_bytes(needed)} of memory; {_bytes(available)} is available ({hint})"
        )


def _bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 1e3:,.1f} kB"
