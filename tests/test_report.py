"""``ipabs report``: one HTML file (charts embedded), one workbook and the charts as PNG files,
written whole or not at all; Chinese labels with ``--lang zh``; bad input refused up front."""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from ipabs import cli, io
from ipabs.format import pct
from ipabs.labels import label
from ipabs.report.html import SECTIONS
from ipabs.report.workbook import SHEETS, sheet_names

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
PATHS = "2000"
PNG = b"\x89PNG\r\n\x1a\n"
RISK = "risk: {correlation: 20%, default_pd: 3%}\n"


class _Page(HTMLParser):
    """The parts of a report the tests look at: section ids, images, and every reference to
    something outside the file."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.external: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            value = a.get(key, "")
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _report(deal: Path | str, out: Path, *extra: str) -> int:
    return cli.main(["report", str(deal), "--paths", PATHS, "--seed", "3", "--out", str(out), "-q", *extra])


def _check_output(out: Path, lang: str) -> tuple[_Page, Any]:
    """Everything a report folder must hold, whatever the deal."""
    html_file, xlsx = out / "report.html", out / "report.xlsx"
    assert html_file.is_file() and xlsx.is_file()
    pngs = sorted((out / "charts").glob("*.png"))
    assert pngs, "no chart written"
    for p in pngs:
        assert p.read_bytes().startswith(PNG), p

    page = _parse(html_file)
    assert page.sections == [sid for sid, _ in SECTIONS]
    assert page.external == [] and "script" not in page.tags and "link" not in page.tags
    # every chart file is embedded, byte for byte, as a data: URI
    embedded = {}
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        embedded[img["data-file"]] = base64.b64decode(img["src"][len(prefix) :])
    assert embedded == {p.name: p.read_bytes() for p in pngs}

    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == sheet_names(lang)
    for ws in wb.worksheets:
        assert ws.freeze_panes not in (None, "A1"), ws.title
        assert ws.column_dimensions["A"].width and ws.column_dimensions["A"].width >= 10, ws.title
    return page, wb


def _check_allocation_table(ws: Any) -> None:
    """The 现金流分配表: two header rows, then per payment date each tranche's interest, principal
    and balance, as numbers with a money format, dates as dates; each balance is the one before
    less the principal paid."""
    assert ws.freeze_panes == "D3"
    tranches = [c.value for c in ws[1][3:] if c.value is not None and ":" not in str(c.value)]
    assert tranches
    rows = list(ws.iter_rows(min_row=3))
    assert rows
    for row in rows:
        assert isinstance(row[2].value, dt.datetime) and row[2].number_format == "yyyy-mm-dd"
        for cell in row[3:]:
            assert isinstance(cell.value, (int, float)), (cell.coordinate, cell.value)
            assert cell.number_format == "#,##0.00"
    for k in range(len(tranches)):
        interest, principal, balance = 3 + 3 * k, 4 + 3 * k, 5 + 3 * k
        previous = None
        for row in rows:
            assert row[interest].value >= -1e-9
            if previous is not None:
                assert row[balance].value == pytest.approx(previous - row[principal].value, abs=0.01)
            previous = row[balance].value


@pytest.mark.parametrize("deal", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_report_on_every_shipped_scenario(
    deal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert _report(deal, out) == 0
    page, wb = _check_output(out, "en")
    _check_allocation_table(wb[label("tranche cash flows")])
    text = " ".join(page.text)
    # every named scenario's cash flows are in the report
    from ipabs.deal.load import load_deal

    for name in load_deal(deal).spec.scenarios:
        assert name in text
    # Monte Carlo numbers are stored as numbers, with a number format
    mc = wb[label("Monte Carlo summary")]
    formats = {}
    for _subject, metric, estimate, *_ in mc.iter_rows(min_row=2):
        assert isinstance(estimate.value, (int, float)) and not isinstance(estimate.value, bool)
        formats[metric.value] = estimate.number_format
    assert formats["expected_loss"] == formats["probability_of_loss"] == "0.0000%"
    assert formats["loss_paths"] == "#,##0"
    assert formats["expected_wal_years"] == "#,##0.0000"
    assert "Traceback" not in capsys.readouterr().err


def test_report_in_chinese_with_sizing_and_sensitivities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "报告"
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    assert (
        cli.main(
            [
                *("report", str(deal), "--paths", PATHS, "--out", str(out), "--lang", "zh"),
                *("--size", "senior:A2", "--sensitivities"),
                *("--state", str(ROOT / "scenarios" / "states" / "caohejing_2025q3.yaml")),
            ]
        )
        == 0
    )
    console = capsys.readouterr().out
    assert "证券档次" in console and "预期损失" in console and "文件" in console
    page, wb = _check_output(out, "zh")
    assert wb.sheetnames[2] == "现金流分配表"
    _check_allocation_table(wb["现金流分配表"])
    # the allocation table's headings are those of a Chinese trust's documents
    assert [c.value for c in wb["现金流分配表"][2][3:6]] == ["利息", "本金", "本金余额"]
    text = " ".join(page.text)
    for _, heading in SECTIONS:
        assert label(heading, "zh") in text
    assert "sizing_curve.png" in {img["data-file"] for img in page.images}
    sens = wb["敏感性分析"]
    assert sens["A1"].value == "risk.pd_multiplier"
    assert sorted({c.value for c in sens["A"][1:]}) == [1.0, 1.5, 2.0]
    headings = [c.value for c in sens[1]]
    el = sens.cell(row=2, column=headings.index("预期损失") + 1)
    assert isinstance(el.value, float) and el.number_format == "0.0000%"
    # the early warning of ipabs monitor on the state's report date (docs/monitor.md)
    watch = wb["风险预警"]
    assert [c.value for c in watch[1]][:3] == ["借款人", "资产状态", "逾期天数"]
    statuses = [row[1].value for row in watch.iter_rows(min_row=2)]
    assert "defaulted" in statuses
    assert "当前预期损失" in text and "12个月内" in text and "Herfindahl" in text


def test_every_report_heading_has_a_chinese_label() -> None:
    for _, heading in SECTIONS:
        assert label(heading, "zh") != heading, heading
    for sheet in SHEETS:
        assert label(sheet, "zh") != sheet, sheet


def test_royalty_only_deal_says_breakeven_does_not_apply(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert _report(ROOT / "scenarios" / "hospital_income_share.yaml", out) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="breakeven-not-applicable"' in text
    assert "no loans or leases" in text


def test_pricing_section_prices_every_tranche_at_par(tmp_path: Path) -> None:
    """The report's pricing section shows each tranche at par on the base case, with the yield
    and modified duration that ipabs.price gives."""
    import ipabs

    deal = ROOT / "scenarios" / "royalty_dscr.yaml"
    out = tmp_path / "r"
    assert _report(deal, out) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    section = text[text.index('<section id="pricing"') :]
    section = section[: section.index("</section>")]
    for name in ("senior", "mezzanine", "equity"):
        quote = ipabs.price(deal, name, price=100.0)
        row = section[section.index(f"<td>{name}</td>") :]
        row = row[: row.index("</tr>")]
        assert pct(quote.yield_) in row, (name, row)
        assert f"{quote.modified_duration:.3f}" in row, (name, row)


def test_user_strings_are_escaped(tmp_path: Path, minimal_text: str) -> None:
    deal = tmp_path / "deal.yaml"
    name = 'Minimal <img src="x" onerror="alert(1)"> & "co"'
    text = minimal_text.replace("name: Minimal IP-pledge deal", f"name: '{name}'") + RISK
    deal.write_text(text, encoding="utf-8")
    assert _report(deal, tmp_path / "out") == 0
    raw = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert '<img src="x"' not in raw
    assert "&lt;img src=&quot;x&quot; onerror=&quot;alert(1)&quot;&gt; &amp; &quot;co&quot;" in raw
    page = _parse(tmp_path / "out" / "report.html")
    assert all(img["src"].startswith("data:") for img in page.images)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def never_simulate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before any work starts."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the report was computed despite bad input")

    monkeypatch.setattr("ipabs.report.build.build_report", refuse)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (
            "junior:AAA",
            ["--size junior:AAA", "caohejing_ip_pledge.yaml", "no tranche 'junior'", "senior, sub"],
        ),
        ("senior", ["--size senior", "TRANCHE:TARGET"]),
        ("senior:ZZZ", ["--size senior:ZZZ", "no rating 'ZZZ'"]),
        ("sub:A2", ["--size sub:A2", "sub is the most junior tranche", "size a more senior tranche"]),
    ],
)
def test_bad_size_is_refused_up_front(
    size: str, expected: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], never_simulate: None
) -> None:
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    assert _report(deal, tmp_path / "out", "--size", size) == 2
    err = capsys.readouterr().err
    for part in expected:
        assert part in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_out_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], never_simulate: None
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    assert _report(deal, blocker) == 2
    assert "--out" in capsys.readouterr().err
    assert _report(deal, blocker / "sub") == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_bad_deal_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], never_simulate: None
) -> None:
    deal = tmp_path / "deal.yaml"
    deal.write_text(
        (ROOT / "tests" / "deals" / "minimal.yaml")
        .read_text(encoding="utf-8")
        .replace("payment_frequency: quarterly", "payment_frequency: fortnightly"),
        encoding="utf-8",
    )
    assert _report(deal, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{deal}:5:22: deal.payment_frequency" in err


# --------------------------------------------------------------------------- all or nothing


def test_a_failed_report_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: Any, target: Any) -> None:
        Path(target).write_bytes(b"half a workbook")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ipabs.report.workbook.save_workbook", broken)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n", encoding="utf-8")
    deal = ROOT / "scenarios" / "caohejing_ip_pledge.yaml"
    for out in (tmp_path / "fresh", tmp_path / "kept"):
        assert _report(deal, out) == 2
    assert not (tmp_path / "fresh").exists()
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


# A signal sent to the command by itself right after its second chart file is written.
INTERRUPT_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path

sig = getattr(signal, sys.argv[1])
real = Path.write_bytes
written = []

def write_bytes(self, data):
    n = real(self, data)
    written.append(self)
    if len(written) == 2:
        os.kill(os.getpid(), sig)
    return n

Path.write_bytes = write_bytes
from ipabs.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGINT", 130), ("SIGTERM", 128 + signal.SIGTERM)])
def test_signal_while_writing_leaves_nothing(tmp_path: Path, minimal_text: str, sig: str, code: int) -> None:
    (tmp_path / "deal.yaml").write_text(minimal_text + RISK, encoding="utf-8")
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for out in ("fresh/out", "kept"):
        done = subprocess.run(
            [
                *(sys.executable, "-c", INTERRUPT_WHILE_WRITING, sig),
                *("report", "deal.yaml", "--paths", "200", "--out", out, "-q"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "fresh" / "out").exists()
        assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["notes.txt"]
        leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
        assert leftovers == [], leftovers


def test_write_tables_takes_bytes_text_and_writers(tmp_path: Path) -> None:
    import pandas as pd

    written = io.write_tables(
        tmp_path / "out",
        {
            "a.csv": pd.DataFrame({"x": [1]}),
            "b/c.png": PNG,
            "d.html": "<p>中文</p>",
            "e.xlsx": lambda target: Path(target).write_text("book", encoding="utf-8"),
        },
    )
    assert [p.relative_to(tmp_path / "out").as_posix() for p in written] == [
        "a.csv",
        "b/c.png",
        "d.html",
        "e.xlsx",
    ]
    assert (tmp_path / "out" / "b" / "c.png").read_bytes() == PNG
    assert (tmp_path / "out" / "d.html").read_text(encoding="utf-8") == "<p>中文</p>"
    assert (tmp_path / "out" / "e.xlsx").read_text(encoding="utf-8") == "book"


# --------------------------------------------------------------------------- in a browser

CHROMIUM = "/usr/bin/chromium"
MEASURE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "widths";
  out.textContent = Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0).join(",");
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_opens_in_a_browser(tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert _report(ROOT / "scenarios" / "royalty_dscr.yaml", out, "--lang", "zh") == 0
    page = out / "report.html"
    n_images = len(_parse(page).images)
    assert n_images > 0
    # measure in a copy: the report itself has no script
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    profile = tmp_path / "profile"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Uncaught" not in done.stderr and "ERROR:CONSOLE" not in done.stderr, done.stderr[-2000:]
    dom = _Widths()
    dom.feed(done.stdout)
    widths = [int(x) for x in dom.widths.split(",")]
    assert len(widths) == n_images
    assert all(w > 0 for w in widths), widths


class _Widths(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.widths = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inside = tag == "pre" and ("id", "widths") in attrs

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.widths += data


# --------------------------------------------------------------------------- documentation


def test_documented_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    text = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    commands = re.findall(r"```bash\n(.*?)```", text, re.S)[0].strip().splitlines()
    assert len(commands) == 2
    for command in commands:
        argv = command.split()[1:]
        assert cli.build_parser().parse_args(argv).func is not None  # every option exists
    first = commands[0].split()[1:]
    first[first.index("--out") + 1] = str(tmp_path / "cli")
    first[first.index("--paths") + 1] = PATHS
    assert cli.main([*first, "-q"]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    exec(compile(block.replace('"royalty_report"', repr(str(tmp_path / "py"))), "docs/report.md", "exec"), {})
    assert (tmp_path / "py" / "report.xlsx").is_file()
    assert "(docs/report.md)" in (ROOT / "README.md").read_text(encoding="utf-8").split("## Documentation")[1]


@pytest.mark.parametrize("stem", ["caohejing_ip_pledge", "patent_sublicence_gz"])
def test_ratings_are_those_of_ipabs_rate(stem: str) -> None:
    """The ratings section is `ipabs rate` with the same paths and seed (plain sampling), also
    when the Monte Carlo section used importance sampling (patent_sublicence_gz at 2,000 paths)."""
    from ipabs.analytics.implied import implied_ratings
    from ipabs.deal.load import load_deal
    from ipabs.report.build import build_report

    deal = load_deal(ROOT / "scenarios" / f"{stem}.yaml")
    data = build_report(deal, paths=int(PATHS), seed=3)
    alone = implied_ratings(deal, paths=int(PATHS), seed=3)
    assert data.ratings.sampling == alone.sampling == "plain"
    assert data.ratings.to_frame().equals(alone.to_frame())
    if stem == "patent_sublicence_gz":
        assert data.sim.sampling is not None and data.sim.sampling.method == "importance"


def test_deal_without_risk_is_refused(
    tmp_path: Path, minimal_text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    deal = tmp_path / "deal.yaml"
    deal.write_text(minimal_text, encoding="utf-8")
    assert _report(deal, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{deal}: a report needs a `risk` section" in err and "--risk FILE" in err
    assert not (tmp_path / "out").exists()
