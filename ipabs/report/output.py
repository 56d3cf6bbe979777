"""The files of a report (``report.html``, ``report.xlsx``, ``charts/*.png``), written all
together or not at all with :func:`ipabs.io.write_tables`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ipabs.io import write_tables
from ipabs.report.build import ReportData
from ipabs.report.html import render_html

HTML_FILE = "report.html"
WORKBOOK_FILE = "report.xlsx"
CHARTS_DIR = "charts"


def report_files(data: ReportData) -> dict[str, Any]:
    """Relative file name -> content (text, PNG bytes, or a function writing the workbook), as
    :func:`ipabs.io.write_tables` takes them."""
    from ipabs.report import workbook

    files: dict[str, Any] = {
        HTML_FILE: render_html(data),
        WORKBOOK_FILE: lambda target: workbook.save_workbook(data, target),
    }
    files.update({f"{CHARTS_DIR}/{c.name}": c.png for c in data.charts})
    return files


def write_report(data: ReportData, out_dir: str | Path) -> list[Path]:
    """Write a report's files into ``out_dir`` (created if needed), all together or not at all,
    even when interrupted.

    Parameters
    ----------
    data : ReportData
        From :func:`ipabs.report.build.build_report`.
    out_dir : str or Path

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import ipabs
    >>> from ipabs.report.build import build_report
    >>> from ipabs.report.output import write_report
    >>> deal = ipabs.load_deal("scenarios/caohejing_ip_pledge.yaml")
    >>> data = build_report(deal, paths=2_000)  # doctest: +SKIP
    >>> write_report(data, "report_out")  # doctest: +SKIP
    """
    return write_tables(out_dir, report_files(data))
