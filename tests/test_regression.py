"""Deal terms under regression: ``ipabs snapshot``, ``ipabs check``, ``ipabs diff``, their Python
API and the pytest plugin (docs/regression.md)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import ipabs
from ipabs.cli import main
from ipabs.regression.core import deal_terms, fingerprint

pytest_plugins = ["pytester"]

DEALS = Path(__file__).parent / "deals"
RISK = (
    "risk:\n  correlation: 30%\n  default_pd: 2%\n  recovery: {model: constant, rate: 0.3, lag_months: 12}\n"
)
PATHS = 400


@pytest.fixture
def deal(tmp_path: Path) -> Path:
    """The minimal test deal with a risk section, in a folder of its own."""
    path = tmp_path / "deal.yaml"
    path.write_text((DEALS / "minimal.yaml").read_text(encoding="utf-8") + RISK, encoding="utf-8")
    return path


@pytest.fixture
def snap(deal: Path) -> Path:
    """A snapshot of ``deal`` with a small Monte Carlo."""
    out = deal.with_name("deal.snapshot.yaml")
    ipabs.snapshot(deal, out, paths=PATHS, seed=3, importance_sampling="off")
    return out


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


# --------------------------------------------------------------------------- snapshot and check


def test_unchanged_deal_checks_clean(snap: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [result] = ipabs.check(snap)
    assert result.ok and result.same_engine, result.text()
    assert set(result.parts) == {"scenario base", "monte carlo"}
    assert main(["check", str(snap)]) == 0
    assert "ok" in capsys.readouterr().out


def test_snapshot_records_terms_results_and_versions(snap: Path, deal: Path) -> None:
    import numba

    data = _load(snap)
    assert list(data)[:5] == ["ipabs_snapshot", "deal", "risk", "fingerprint", "versions"]
    assert data["deal"] == "deal.yaml"  # relative to the snapshot's folder
    assert data["versions"]["numba"] == numba.__version__
    assert data["versions"]["ipabs"] == ipabs.__version__
    assert data["terms"]["tranches.senior.coupon"] == pytest.approx(0.032)
    assert data["terms"]["tranches.senior.balance"] == 9_500_000
    assert data["terms"]["pools.park.loans.AlphaTech.rate"] == pytest.approx(0.055)
    base = data["scenarios"]["base"]
    run = ipabs.run(ipabs.load_deal(deal), "base").summary
    assert base["tranches"]["senior"]["interest_paid"] == run.loc["senior", "interest_paid"]
    assert base["triggers"]["cdr_trigger"]["periods_active"] == 0
    assert len(base["periods"]["senior.balance_end"]) == len(base["payment_dates"]) == 12
    mc = data["monte_carlo"]
    assert (mc["paths"], mc["seed"], mc["sampling"]) == (PATHS, 3, "plain")
    el = mc["metrics"]["senior.expected_loss"]
    sim = ipabs.simulate(deal, paths=PATHS, seed=3).tranches.loc["senior"]
    assert (el["estimate"], el["se"]) == (sim["expected_loss"], sim["expected_loss_se"])


def test_reformatted_and_reordered_yaml_keeps_its_fingerprint(deal: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(deal.read_text(encoding="utf-8"))

    # every mapping's keys reversed, amounts written out, flow style, no comments
    def reverse(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: reverse(node[k]) for k in reversed(list(node))}
        if isinstance(node, list):
            return [reverse(x) for x in node]
        return node

    data = reverse(data)
    data["tranches"][0]["balance"] = 9_500_000
    data["deal"]["currency"] = "CNY"  # the default, now written out
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=True), encoding="utf-8")
    assert other.read_text(encoding="utf-8") != deal.read_text(encoding="utf-8")
    assert fingerprint(deal_terms(other)) == fingerprint(deal_terms(deal))
    # a changed value is a changed fingerprint
    data["tranches"][0]["balance"] = 9_400_000
    other.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert fingerprint(deal_terms(other)) != fingerprint(deal_terms(deal))


CHANGES = [
    ("coupon: 3.2%", "coupon: 3.3%", "tranches.senior.coupon", "scenario base", "senior.interest_paid"),
    (
        "threshold: 10%",
        "threshold: 1%",
        "triggers.cdr_trigger.threshold",
        "scenario base",
        "cdr_trigger.periods_active",
    ),
    ("default_pd: 2%", "default_pd: 3%", "risk.default_pd", "monte carlo", "pool.expected_loss"),
    ("balance: 9.5m", "balance: 9m", "tranches.senior.balance", "scenario base", "senior.original_balance"),
]


@pytest.mark.parametrize(("old", "new", "term", "part", "figure"), CHANGES, ids=lambda x: str(x)[:24])
def test_each_change_is_caught_and_named(
    snap: Path, deal: Path, old: str, new: str, term: str, part: str, figure: str
) -> None:
    _edit(deal, old, new)
    [result] = ipabs.check(snap)
    assert not result.ok
    assert [t.path for t in result.terms] == [term]
    assert result.terms[0].kind == "changed"
    moved = [m.figure for m in result.parts[part]]
    assert figure in moved, result.text()
    text = result.text()
    assert term in text and figure in text
    assert main(["check", str(snap)]) == 1


def test_deterministic_figures_compare_to_1e_9_relative(snap: Path) -> None:
    data = _load(snap)
    senior = data["scenarios"]["base"]["tranches"]["senior"]
    paid = senior["interest_paid"]
    senior["interest_paid"] = paid * (1 + 1e-10)
    _save(snap, data)
    assert ipabs.check(snap)[0].ok
    senior["interest_paid"] = paid * (1 + 1e-8)
    _save(snap, data)
    [result] = ipabs.check(snap)
    [moved] = result.parts["scenario base"]
    assert moved.figure == "senior.interest_paid" and moved.old == paid * (1 + 1e-8)


def test_monte_carlo_same_engine_is_bit_for_bit(snap: Path) -> None:
    data = _load(snap)
    el = data["monte_carlo"]["metrics"]["senior.expected_loss"]
    el["estimate"] = math.nextafter(el["estimate"], 1.0)
    _save(snap, data)
    [result] = ipabs.check(snap)
    assert [m.figure for m in result.parts["monte carlo"]] == ["senior.expected_loss"]


@pytest.mark.parametrize(("shift", "ok"), [(5.0, True), (6.0, False), (-6.0, False)])
def test_monte_carlo_on_another_engine_within_k_combined_standard_errors(
    snap: Path, shift: float, ok: bool
) -> None:
    # the recorded and the new run have the same error se: combined sqrt(2) se, so a shift of
    # 5 se is 3.54 combined errors (within 4) and 6 se is 4.24 (outside)
    data = _load(snap)
    data["versions"]["numba"] = "0.0.0"
    el = data["monte_carlo"]["metrics"]["senior.expected_loss"]
    assert el["se"] > 0
    el["estimate"] += shift * el["se"]
    _save(snap, data)
    [result] = ipabs.check(snap, k=4)
    assert not result.same_engine
    assert result.ok is ok, result.text()
    if not ok:
        [moved] = result.parts["monte carlo"]
        assert moved.figure == "senior.expected_loss"
        assert f"{-shift / math.sqrt(2):+.2f} standard errors" in moved.note
    # a wider k lets the larger shift pass
    assert ipabs.check(snap, k=4.5)[0].ok


def test_update_rewrites_the_snapshot(snap: Path, deal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(deal, "coupon: 3.2%", "coupon: 3.3%")
    assert main(["check", str(snap)]) == 1
    assert main(["check", "--update", str(snap)]) == 0
    assert "updated" in capsys.readouterr().out
    assert _load(snap)["terms"]["tranches.senior.coupon"] == pytest.approx(0.033)
    assert main(["check", str(snap.parent)]) == 0  # a folder stands for its snapshots


def test_snapshot_cli(deal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = deal.with_name("cli.snapshot.yaml")
    assert main(["snapshot", str(deal), "-o", str(out), "--paths", "200", "--seed", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert _load(out)["monte_carlo"]["seed"] == 2
    assert main(["check", str(out)]) == 0
    assert main(["snapshot", str(deal), "-o", str(deal.with_name("x.yaml"))]) == 2
    assert "*.snapshot.yaml" in capsys.readouterr().err


BAD = [
    ("ipabs_snapshot: 1\ndeal: deal.yaml\n", 1, 1, "", "missing required field 'fingerprint'"),
    (None, None, None, "monte_carlo.paths", "greater than 0"),
    ("deal: deal.yaml\n", 1, 1, "", "not a snapshot file"),
]


@pytest.mark.parametrize(("text", "line", "column", "path", "message"), BAD)
def test_bad_snapshot_files_give_located_errors(
    snap: Path,
    capsys: pytest.CaptureFixture[str],
    text: str | None,
    line: int | None,
    column: int | None,
    path: str,
    message: str,
) -> None:
    if text is None:  # a bad value inside a real snapshot: located at its line
        lines = snap.read_text(encoding="utf-8").splitlines()
        i = next(i for i, x in enumerate(lines) if x.strip().startswith("paths:"))
        lines[i] = "  paths: -5"
        snap.write_text("\n".join(lines) + "\n", encoding="utf-8")
        line, column = i + 1, 10
    else:
        snap.write_text(text, encoding="utf-8")
    with pytest.raises(ipabs.DealError) as exc:
        ipabs.check(snap)
    issue = next(i for i in exc.value.issues if message in i.message)
    assert (issue.file, issue.line, issue.column, issue.path) == (str(snap), line, column, path)
    capsys.readouterr()
    assert main(["check", str(snap)]) == 2
    err = capsys.readouterr().err
    assert f"{snap}:{line}:{column}" in err and "Traceback" not in err


# --------------------------------------------------------------------------- diff


def test_diff_names_terms_by_path_and_shows_deltas(deal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = deal.with_name("b.yaml")
    text = deal.read_text(encoding="utf-8").replace("coupon: 3.2%", "coupon: 3.5%")
    text = text.replace(
        "  - name: trustee\n    annual_amount: 50k\n",
        "  - name: trustee\n    annual_amount: 50k\n  - name: servicer\n    annual_amount: 20k\n",
    )
    text = text.replace("        pledged_ip: {kind: patent, count: 3, appraised_value: 15m}\n", "")
    b.write_text(text, encoding="utf-8")
    d = ipabs.diff(deal, b)
    changes = {t.path: t for t in d.terms}
    assert changes["tranches.senior.coupon"].kind == "changed"
    assert (changes["tranches.senior.coupon"].old, changes["tranches.senior.coupon"].new) == (0.032, 0.035)
    assert changes["fees.servicer.annual_amount"].kind == "added"
    assert changes["pools.park.loans.AlphaTech.pledged_ip.count"].kind == "removed"
    assert changes["pools.park.loans.AlphaTech.pledged_ip.count"].old == 3
    rows = {(r["tranche"], r["figure"]): r for r in d.deterministic}
    a_run = ipabs.run(ipabs.load_deal(deal)).summary
    b_run = ipabs.run(ipabs.load_deal(b)).summary
    r = rows[("senior", "interest_paid")]
    assert (r["a"], r["b"]) == (a_run.loc["senior", "interest_paid"], b_run.loc["senior", "interest_paid"])
    assert r["delta"] == pytest.approx(r["b"] - r["a"]) and r["delta"] > 0
    assert main(["diff", str(deal), str(b)]) == 0
    out = capsys.readouterr().out
    assert "tranches.senior.coupon: 0.032 -> 0.035" in out and "fees.servicer.annual_amount: added" in out


def test_diff_monte_carlo_uses_common_random_numbers(deal: Path) -> None:
    b = deal.with_name("b.yaml")
    b.write_text(deal.read_text(encoding="utf-8").replace("coupon: 3.2%", "coupon: 3.5%"), encoding="utf-8")
    d = ipabs.diff(deal, b, paths=PATHS, seed=5)
    rows = {(r["subject"], r["metric"]): r for r in d.monte_carlo}
    # the coupon does not change which paths default: the pool's loss is the same path by path
    pool = rows[("pool", "expected_loss")]
    assert pool["a"] == pool["b"] and pool["delta_se"] == 0.0
    # the senior's loss moves, and the paired error is far below the two runs' own errors
    el = rows[("senior", "expected_loss")]
    assert el["delta"] != 0 and el["delta_se"] < 0.5 * math.hypot(el["a_se"], el["b_se"])
    # independent runs: the same figures as ipabs.simulate with the same seed
    sim = ipabs.simulate(b, paths=PATHS, seed=5).tranches.loc["senior"]
    assert el["b"] == sim["expected_loss"]


# --------------------------------------------------------------------------- pytest plugin


def _plugin_args() -> list[str]:
    """Enable the plugin by name unless the installed package registers it already."""
    from importlib.metadata import entry_points

    installed = any(ep.value == "ipabs.regression.plugin" for ep in entry_points(group="pytest11"))
    return ["-p", "no:cacheprovider"] + ([] if installed else ["-p", "ipabs.regression.plugin"])


def _plugin_repo(pytester: pytest.Pytester, deal: Path) -> Path:
    deals = pytester.mkdir("deals")
    shutil.copy(deal, deals / "deal.yaml")
    ipabs.snapshot(
        deals / "deal.yaml", deals / "deal.snapshot.yaml", paths=200, seed=1, importance_sampling="off"
    )
    return deals


def test_pytest_plugin_checks_snapshots(pytester: pytest.Pytester, deal: Path) -> None:
    deals = _plugin_repo(pytester, deal)
    result = pytester.runpytest_inprocess("-v", *_plugin_args())
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*deal.snapshot.yaml::terms PASSED*", "*scenario?base? PASSED*", "*monte_carlo PASSED*"]
    )

    _edit(deals / "deal.yaml", "coupon: 3.2%", "coupon: 3.3%")
    result = pytester.runpytest_inprocess(*_plugin_args())
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*terms changed since the snapshot:",
            "*tranches.senior.coupon: 0.032 -> 0.033",
            "*scenario base:",
            "*senior.interest_paid: * -> * (+*, +*%)",
            "*monte carlo (same engine: compared bit for bit):",
            "*senior.expected_loss: *the same engine must agree bit for bit*",
            "FAILED deals/deal.snapshot.yaml::terms*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_pytest_plugin_reports_a_bad_snapshot_with_its_location(
    pytester: pytest.Pytester, deal: Path
) -> None:
    deals = _plugin_repo(pytester, deal)
    (deals / "deal.snapshot.yaml").write_text("ipabs_snapshot: 1\ndeal: [1, 2]\n", encoding="utf-8")
    result = pytester.runpytest_inprocess(*_plugin_args())
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*deal.snapshot.yaml:2:7: deal:*"])


# --------------------------------------------------------------------------- docs


def test_documented_walkthrough_and_python_example_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "regression.md").read_text(encoding="utf-8")
    (tmp_path / "deals").mkdir()
    shutil.copy(root / "scenarios" / "caohejing_ip_pledge.yaml", tmp_path / "deals" / "caohejing.yaml")
    monkeypatch.chdir(tmp_path)
    walkthrough = text.split("## Walkthrough")[1].split("\n## ")[0]
    first = re.findall(r"```bash\n(.*?)```", walkthrough, re.S)[0]
    shown = re.findall(r"```text\n(.*?)```", walkthrough, re.S)[1]
    commands = [c for c in first.splitlines() if c.startswith("ipabs ")]
    assert len(commands) == 2
    for command in commands:
        assert main(command.split()[1:]) == 0, command

    # the terms' count and fingerprint follow the example deal, which may be edited for its own sake
    def unhashed(t: str) -> str:
        return re.sub(r"\d+ terms|sha256:[0-9a-f]+", "#", t)

    assert unhashed(capsys.readouterr().out) == unhashed(shown)
    [python] = re.findall(r"```python\n(.*?)```", text, re.S)
    exec(compile(python, "docs/regression.md", "exec"), {})
    assert "True" in capsys.readouterr().out


@pytest.mark.parametrize(("key", "value"), [("jit", False), ("kernels", "0"), ("ipabs", "0.0.0")])
def test_another_engine_is_any_change_of_version_kernels_or_jit(snap: Path, key: str, value: Any) -> None:
    data = _load(snap)
    data["versions"][key] = value
    _save(snap, data)
    [result] = ipabs.check(snap)
    assert result.ok and not result.same_engine
