"""Console output: tables aligned by display width (Chinese names), headings in Chinese with
--lang zh, --quiet, the compile notice and progress bars only on a terminal."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.cells import cell_len

from ipabs import cli
from ipabs.cli import _table, main
from ipabs.commands import _common as common
from ipabs.labels import ZH, label

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = ROOT / "tests" / "deals" / "minimal.yaml"
ANSI = re.compile(r"\x1b\[")
RISK = """
risk:
  correlation: 0.25
  default_pd: 0.08
  recovery: {model: constant, rate: 0.3, lag_months: 3}
"""


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def chinese_deal(tmp_path: Path) -> Path:
    """The minimal deal with Chinese tranche names (优先A级 senior, 次级 subordinated)."""
    text = MINIMAL.read_text(encoding="utf-8")
    text = re.sub(r"\bsenior\b", "优先A级", text)
    text = re.sub(r"\bsub\b", "次级", text)
    text += RISK
    path = tmp_path / "中文.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _columns_end_together(lines: list[str]) -> None:
    """Every line of a right-aligned table ends at the same display column, and the first
    (left-aligned) column is padded to one display width."""
    widths = {cell_len(line) for line in lines}
    assert len(widths) == 1, [(line, cell_len(line)) for line in lines]


# --------------------------------------------------------------------------- tables


def test_table_aligns_wide_characters() -> None:
    text = _table(
        ["tranche", "balance", "loss"],
        [["优先A级", "80,000,000.00", "0"], ["次级", "1.00", "12.50"], ["mezzanine", "3.00", "1"]],
    )
    lines = text.splitlines()
    assert len(lines) == 5 and set(lines[1]) <= {"-", " "}
    _columns_end_together(lines)
    # the (right-aligned) second column ends at the same display column on every line, past
    # the widest name
    cells = ["balance", "80,000,000.00", "1.00", "3.00"]
    ends = {
        cell_len(line[: line.index(c) + len(c)]) for line, c in zip(lines[:1] + lines[2:], cells, strict=True)
    }
    assert len(ends) == 1 and min(
        cell_len(line[: line.index(c)]) for line, c in zip(lines[2:], cells[1:], strict=True)
    ) > cell_len("mezzanine")


def test_table_is_plain_text_and_never_wraps() -> None:
    wide = [["x" * 300, "[bold]not markup[/bold]", ":smile:"]]
    text = _table(["name", "a", "b"], wide)
    assert not ANSI.search(text)
    assert "[bold]not markup[/bold]" in text and ":smile:" in text
    assert len(text.splitlines()) == 3
    assert all(line == line.rstrip() for line in text.splitlines())


def test_table_refuses_a_ragged_row() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 headings"):
        _table(["a", "b", "c"], [["1", "2"]])


def test_labels() -> None:
    assert label("expected loss ± se", "zh") == "预期损失 ± 标准误"
    assert label("WAL (y)", "zh") == "加权平均期限（年）"
    assert label("10y", "zh") == "10年"
    assert label("tranches.senior.balance", "zh") == "tranches.senior.balance"  # a path stays
    assert label("yield", "en") == "yield"
    with pytest.raises(ValueError, match="unknown language"):
        label("yield", "fr")
    # the terms of Chinese trust documents named in the design
    assert ZH["expected loss"] == "预期损失" and ZH["probability of loss"] == "损失概率"
    assert ZH["pool"] == "资产池" and ZH["yield"] == "收益率" and ZH["standard error"] == "标准误"


# --------------------------------------------------------------------------- commands


def test_run_with_chinese_tranche_names_lines_up(
    chinese_deal: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(chinese_deal)]) == 0
    out = capsys.readouterr().out
    lines = out.split("\n\n")[1].splitlines()
    assert lines[2].startswith("优先A级 ") and lines[3].startswith("次级 ")
    _columns_end_together(lines)


def test_lang_zh_headings(chinese_deal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(chinese_deal), "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    head = out.split("\n\n")[1].splitlines()[0]
    for term in ("证券档次", "本金余额", "票面利率", "加权平均期限（年）", "收益率", "损失"):
        assert term in head
    assert "tranche" not in head
    _columns_end_together(out.split("\n\n")[1].splitlines())
    assert main(["mc", str(chinese_deal), "--paths", "200", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "预期损失 ± 标准误" in out and "损失概率 ± 标准误" in out and "优先A级" in out
    assert main(["ratings", "--lang", "zh"]) == 0
    assert "评级" in capsys.readouterr().out


def test_lang_does_not_touch_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(MINIMAL), "--json"]) == 0
    plain = capsys.readouterr().out
    assert main(["run", str(MINIMAL), "--json", "--lang", "zh"]) == 0
    assert capsys.readouterr().out == plain
    json.loads(plain)


def test_every_command_has_quiet_and_lang() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        options = {o for a in command._actions for o in a.option_strings}
        assert {"--quiet", "--lang"} <= options, name


def test_quiet_prints_only_the_result(
    chinese_deal: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a recovery lag past the legal final date is a validation warning of `run`
    late = tmp_path / "late.yaml"
    late.write_text(
        MINIMAL.read_text(encoding="utf-8").replace("lag_months: 12", "lag_months: 40"), encoding="utf-8"
    )
    assert main(["run", str(late)]) == 0
    loud = capsys.readouterr()
    assert "warning:" in loud.err
    assert main(["run", str(late), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == loud.out
    # for `validate` the warnings are the result
    assert main(["validate", str(late), "--quiet"]) == 0
    assert "warning:" in capsys.readouterr().err
    # on a terminal: no progress bar, no notice
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["mc", str(chinese_deal), "--paths", "200", "--quiet"]) == 0
    assert terminal.getvalue() == ""
    assert "expected loss ± se" in capsys.readouterr().out


def test_progress_bar_shows_the_time_left_on_a_terminal(
    chinese_deal: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["mc", str(chinese_deal), "--paths", "300"]) == 0
    bar = terminal.getvalue()
    assert "300/300" in bar and "paths" in bar and "left" in bar
    assert not ANSI.search(capsys.readouterr().out)


def test_compile_notice_for_every_kernel_command(
    chinese_deal: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold cache (simulated) makes each kernel command say it compiles, once, before running."""
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(common, "_kernels_cached", lambda kernels: False)
    import numba

    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    for argv in (
        ["run", str(chinese_deal)],
        ["mc", str(chinese_deal), "--paths", "100"],
        ["breakeven", str(chinese_deal), "--tranche", "优先A级"],
    ):
        terminal.seek(0)
        terminal.truncate()
        assert main(argv) == 0, argv
        assert terminal.getvalue().count("compiling the simulation kernels") == 1, argv
        terminal.seek(0)
        terminal.truncate()
        assert main([*argv, "--quiet"]) == 0
        assert "compiling" not in terminal.getvalue()
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "unit"),
    [
        (["breakeven", "DEAL", "--tranche", "优先A级"], "stresses"),
        (["size", "DEAL", "--tranche", "优先A级", "--target", "Baa3", "--paths", "300"], "paths"),
        (["rate", "DEAL", "--paths", "300"], "stresses"),
        (["sweep", "DEAL", "--set", "risk.pd_multiplier=1,2", "--paths", "300"], "points"),
    ],
)
def test_long_commands_show_progress_only_on_a_terminal(
    chinese_deal: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    unit: str,
) -> None:
    argv = [str(chinese_deal) if a == "DEAL" else a for a in argv]
    assert main(argv) == 0
    piped = capsys.readouterr()
    assert piped.err == "" and not ANSI.search(piped.out)
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(argv) == 0
    bar = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())
    assert re.search(rf"(\d+)/\1 {unit} \d+:\d\d:\d\d elapsed, 0:00:00 left", bar), bar
    seconds = re.compile(r"[\d.]+ s\b")  # the time taken differs from run to run
    assert seconds.sub("", capsys.readouterr().out) == seconds.sub("", piped.out)  # the same result
    for flag in ("--quiet", "--json"):
        terminal.seek(0)
        terminal.truncate()
        assert main([*argv, flag]) == 0
        assert terminal.getvalue() == "", flag
    capsys.readouterr()


def test_rate_counts_the_deterministic_kernels_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rate` runs the Monte Carlo and then the breakeven's waterfall: a cold cache of either is
    announced before it starts."""
    import numba

    from ipabs.engine.waterfall_numba_fns import run_waterfall
    from ipabs.risk.montecarlo_numba_fns import simulate_chunk

    monkeypatch.setattr(numba.config, "DISABLE_JIT", False)
    asked: list[list[object]] = []
    monkeypatch.setattr(common, "_kernels_cached", lambda kernels: asked.append(list(kernels)) or True)
    common.compile_notice(True, stream=FakeTerminal())
    common.compile_notice(True, stream=FakeTerminal(), deterministic=True)
    assert simulate_chunk in asked[0] and run_waterfall not in asked[0]
    assert simulate_chunk in asked[1] and run_waterfall in asked[1]


def test_documented_console_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Console output")[1].split("\n## ")[0]
    assert "rich" in section and "--quiet" in section and "--lang" in section
    monkeypatch.chdir(ROOT)
    commands = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(commands) == 2
    for command in commands:
        assert main(command.split()[1:]) == 0, command
    shown = re.search(r"--lang zh\n```\n\n```text\n(.*?)```", section, re.S)
    assert shown is not None
    assert main(["run", "scenarios/caohejing_ip_pledge.yaml", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(shown.group(1))
