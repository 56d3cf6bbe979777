"""PD models fitted from a performance tape: recovery of a known model, validation statistics
against independent computations, monotone boosting, the risk file and located errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta, ks_2samp
from sklearn.metrics import roc_auc_score

from ipabs.analytics.pd_model import (
    MASTER_SCALE,
    MIN_ROWS,
    SYNTHETIC_COEFFICIENTS,
    SYNTHETIC_INDUSTRIES,
    PDFit,
    calibration_table,
    fit_pd,
    grade_of,
    load_performance_tape,
    score,
    synthetic_tape,
)
from ipabs.cli import main
from ipabs.deal.load import load_risk
from ipabs.errors import DealError

ROOT = Path(__file__).resolve().parents[1]
TAPE = ROOT / "scenarios" / "data" / "synthetic_pd_tape.csv"
OBLIGORS = ROOT / "scenarios" / "data" / "synthetic_obligors.csv"


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic_tape(1500, 11)


@pytest.fixture(scope="module")
def logistic(synthetic: tuple[pd.DataFrame, np.ndarray]) -> PDFit:
    return fit_pd(synthetic[0], "default_12m")


def _validation(tape: pd.DataFrame, fit: PDFit) -> np.ndarray:
    return (pd.to_datetime(tape["observation_date"]).dt.date >= fit.oot_from).to_numpy()


def test_logistic_recovers_the_true_coefficients(
    synthetic: tuple[pd.DataFrame, np.ndarray], logistic: PDFit
) -> None:
    coef = logistic.coefficients.set_index("term")
    # the fit drops the first industry in name order (biomed): the truth in those terms
    base = sorted(SYNTHETIC_INDUSTRIES)[0]
    truth = dict(SYNTHETIC_COEFFICIENTS)
    truth["intercept"] += SYNTHETIC_INDUSTRIES[base][1]
    for name, (_, effect) in SYNTHETIC_INDUSTRIES.items():
        if name != base:
            truth[f"industry_{name}"] = effect - SYNTHETIC_INDUSTRIES[base][1]
    assert set(truth) == set(coef.index)
    z = {t: (coef.loc[t, "coefficient"] - v) / coef.loc[t, "std_error"] for t, v in truth.items()}
    assert max(abs(v) for v in z.values()) < 3.5, z
    # the standard errors are not so wide that anything passes: leverage is clearly found
    assert coef.loc["leverage", "std_error"] < 0.4 * SYNTHETIC_COEFFICIENTS["leverage"]


def test_standard_errors_match_an_independent_maximum_likelihood_fit(
    synthetic: tuple[pd.DataFrame, np.ndarray], logistic: PDFit
) -> None:
    """The reported coefficients and standard errors equal those of an independent maximum
    likelihood fit on the raw (unscaled) design: scipy's optimiser, the information by hand."""
    from scipy.optimize import minimize

    tape = synthetic[0]
    train = ~_validation(tape, logistic)
    numeric = list(SYNTHETIC_COEFFICIENTS)[1:]
    dummies = [n for n in sorted(SYNTHETIC_INDUSTRIES)[1:]]
    D = np.column_stack(
        [np.ones(train.sum()), tape.loc[train, numeric].to_numpy(float)]
        + [(tape.loc[train, "industry"] == d).to_numpy(float) for d in dummies]
    )
    y = tape.loc[train, "default_12m"].to_numpy(float)

    def nll(b: np.ndarray) -> tuple[float, np.ndarray]:
        eta = D @ b
        p = 1 / (1 + np.exp(-eta))
        return float(np.sum(np.logaddexp(0, eta) - y * eta)), D.T @ (p - y)

    b = minimize(nll, np.zeros(D.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-9}).x
    p = 1 / (1 + np.exp(-(D @ b)))
    se = np.sqrt(np.diag(np.linalg.inv(D.T @ (D * (p * (1 - p))[:, None]))))
    assert logistic.coefficients["coefficient"].to_numpy() == pytest.approx(b, rel=1e-3, abs=1e-4)
    assert logistic.coefficients["std_error"].to_numpy() == pytest.approx(se, rel=1e-3)


def test_oot_auc_is_close_to_the_true_models(
    synthetic: tuple[pd.DataFrame, np.ndarray], logistic: PDFit
) -> None:
    tape, true_pd = synthetic
    valid = _validation(tape, logistic)
    y = tape["default_12m"].to_numpy()[valid]
    assert logistic.n_validation == valid.sum() and logistic.defaults_validation == y.sum()
    true_auc = roc_auc_score(y, true_pd[valid])
    assert logistic.auc == pytest.approx(roc_auc_score(y, logistic.validation_pd), abs=1e-12)
    assert abs(logistic.auc - true_auc) < 0.03, (logistic.auc, true_auc)
    assert np.corrcoef(logistic.validation_pd, true_pd[valid])[0, 1] > 0.95
    # default split: the last quarter of the 24 quarter-ends are validation
    dates = sorted(set(tape["observation_date"]))
    assert logistic.oot_from.isoformat() == dates[-6]


def test_ks_and_brier_are_independent_computations(logistic: PDFit) -> None:
    s, y = logistic.validation_pd, logistic.validation_y
    assert logistic.ks == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)
    assert logistic.brier == pytest.approx(float(np.mean((s - y) ** 2)), abs=1e-15)


def test_calibration_by_grade_with_jeffreys_intervals() -> None:
    rng = np.random.default_rng(3)
    pds = np.concatenate([np.full(400, 0.03), np.full(200, 0.12), np.full(10, 0.5), np.full(50, 0.007)])
    y = (rng.random(len(pds)) < pds).astype(int)
    y[-50:] = 0  # a grade without defaults
    y[:400][:40] = 1  # 10%+ observed against 3% predicted: outside the interval
    cal = calibration_table(pds, y).set_index("grade")
    assert list(cal.index) == list(MASTER_SCALE)
    for g in cal.index[cal["count"] > 0]:
        n, d = int(cal.loc[g, "count"]), int(cal.loc[g, "defaults"])
        lo = 0.0 if d == 0 else beta.ppf(0.025, d + 0.5, n - d + 0.5)
        hi = 1.0 if d == n else beta.ppf(0.975, d + 0.5, n - d + 0.5)
        assert cal.loc[g, "ci_low"] == pytest.approx(lo, abs=1e-14)
        assert cal.loc[g, "ci_high"] == pytest.approx(hi, abs=1e-14)
        inside = grade_of(pds) == g
        assert n == inside.sum() and d == y[inside].sum()
    assert cal.loc["G5", "outside"] and cal.loc["G5", "status"] == "ok"
    assert cal.loc["G3", "ci_low"] == 0.0 and cal.loc["G3", "status"] == "few defaults"
    assert not cal.loc["G3", "outside"]  # 0.7% lies within [0, 7.1%]
    # too few rows: no observed rate shown and never flagged, whatever the outcome
    assert cal.loc["G8", "count"] == 10 < MIN_ROWS
    assert math.isnan(cal.loc["G8", "observed"]) and cal.loc["G8", "status"] == "few rows"
    assert not cal.loc["G8", "outside"]
    assert cal.loc["G1", "status"] == "empty" and math.isnan(cal.loc["G1", "mean_pd"])


def test_master_scale_bounds() -> None:
    assert list(grade_of(np.array([0.0, 0.0025, 0.00249, 0.159, 0.16, 1.0]))) == [
        "G1",
        "G2",
        "G1",
        "G7",
        "G8",
        "G8",
    ]


def _bump_tape(n: int, seed: int) -> pd.DataFrame:
    """PD rising with x overall, with a sharp bump at x = 0.3 the constraint must iron out."""
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    z = rng.normal(size=n)
    pd_true = 0.02 + 0.1 * x + 0.35 * np.exp(-(((x - 0.3) / 0.05) ** 2))
    dates = pd.date_range("2020-03-31", periods=8, freq="QE").date
    return pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "observation_date": [d.isoformat() for d in rng.choice(dates, n)],
            "x": x,
            "z": z,
            "default_12m": (rng.random(n) < pd_true).astype(int),
        }
    )


def test_monotone_gbm_is_monotone_where_the_unconstrained_one_is_not() -> None:
    tape = _bump_tape(3000, 5)
    grid = pd.DataFrame({"x": np.linspace(0.0, 1.0, 201), "z": 0.0})
    free = fit_pd(tape, "default_12m", model="gbm")
    bound = fit_pd(tape, "default_12m", model="gbm", monotone={"x": 1})
    free_pd, bound_pd = free.predict(grid), bound.predict(grid)
    assert np.min(np.diff(free_pd)) < -0.02, "without the constraint the bump shows"
    assert np.all(np.diff(bound_pd) >= -1e-12)
    assert bound_pd[-1] > bound_pd[0] + 0.05


def test_risk_file_round_trips_and_mc_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fit"
    code = main(["fit-pd", str(TAPE), "--target", "default_12m", "--score", str(OBLIGORS), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "AUC" in text and "G5" in text
    assert {p.name for p in out.iterdir()} == {
        "risk.yaml",
        "calibration.csv",
        "calibration.png",
        "coefficients.csv",
        "scores.csv",
    }
    fit = fit_pd(load_performance_tape(TAPE), "default_12m")
    risk = load_risk(out / "risk.yaml")
    assert risk.pd_by_grade == pytest.approx(fit.grade_pd, rel=1e-5)
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["obligor", "pd", "grade"]
    assert list(scores["grade"]) == list(grade_of(scores["pd"].to_numpy()))
    # a deal whose loans carry the scored grades, run under the fitted risk file
    loans = "\n".join(
        f"      - {{obligor: '{o}', balance: 1m, rate: 0.05, term_months: 24, grade: {g}}}"
        for o, g in zip(scores["obligor"], scores["grade"], strict=True)
    )
    deal = tmp_path / "deal.yaml"
    deal.write_text(
        "deal:\n  name: graded\n  closing_date: 2025-01-01\n  first_payment_date: 2026-01-01\n"
        "  payment_frequency: annual\n  legal_final_date: 2027-01-01\n"
        f"pools:\n  - name: pool\n    loans:\n{loans}\n"
        f"tranches:\n  - {{name: notes, balance: {len(scores)}m}}\n"
        "risk:\n  correlation: 0.2\n  recovery: {model: constant, rate: 0.3}\n"
        "waterfalls:\n  normal:\n    - pay_interest: notes\n    - pay_principal: notes\n",
        encoding="utf-8",
    )
    assert main(["mc", str(deal), "--risk", str(out / "risk.yaml"), "--paths", "200", "--seed", "1"]) == 0
    capsys.readouterr()
    # the simulated defaults follow the grades' PDs: over the one-year life each obligor
    # defaults with its grade's annual PD, independently (the file has no correlation)
    from ipabs.montecarlo import simulate
    from ipabs.risk.montecarlo_numba_fns import P_DEFAULTS

    one_year = deal.read_text(encoding="utf-8").replace(
        "legal_final_date: 2027-01-01", "legal_final_date: 2026-01-01"
    )
    one_year = one_year.replace("term_months: 24", "term_months: 12")
    short = tmp_path / "one_year.yaml"
    short.write_text(one_year, encoding="utf-8")
    sim = simulate(short, paths=20_000, seed=3, threads=1, risk=risk)
    p = np.array([fit.grade_pd[g] for g in scores["grade"]])
    count = sim.pool_outcomes[:, P_DEFAULTS]
    assert abs(count.mean() - p.sum()) < 4 * math.sqrt(np.sum(p * (1 - p)) / sim.paths)
    # --base-risk keeps the rest of the deal's risk section
    assert (
        main(["fit-pd", str(TAPE), "--target", "default_12m", "--base-risk", str(deal), "--out", str(out)])
        == 0
    )
    kept = load_risk(out / "risk.yaml")
    assert kept.correlation == 0.2 and kept.recovery.rate == 0.3
    assert kept.pd_by_grade == pytest.approx(fit.grade_pd, rel=1e-5)


def test_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit-pd", str(TAPE), "--target", "default_12m", "--json", "--score", str(OBLIGORS)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "logistic" and len(doc["validation"]["calibration"]) == len(MASTER_SCALE)
    assert len(doc["scores"]) == 9 and 0.5 < doc["validation"]["auc"] < 1


def test_score_refuses_an_unknown_category(logistic: PDFit) -> None:
    obligors = pd.read_csv(OBLIGORS)
    obligors.loc[2, "industry"] = "fintech"
    with pytest.raises(DealError) as err:
        score(logistic, obligors)
    assert "fintech" in str(err.value) and ":4:9:" in str(err.value)


def _write(tmp_path: Path, text: str, name: str = "tape.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "id,observation_date,leverage,industry,default_12m\n"


@pytest.mark.parametrize(
    ("body", "where", "words"),
    [
        ("L1,2024-03-31,0.4,soft,2\n", ":2:5:", "not 0 or 1"),
        ("L1,2024-13-31,0.4,soft,0\n", ":2:2:", "not a date"),
        (
            "L1,2024-03-31,0.4,soft,0\nL2,2024-03-31,abc,soft,1\nL3,2024-03-31,0.5,soft,0\n",
            ":3:3:",
            "not a number",
        ),
        ("L1,2024-03-31,,soft,0\nL2,2024-03-31,0.2,soft,0\n", ":2:3:", "blank value"),
        ("", ":2:1:", "no rows"),
        (
            "L1,2024-03-31,0.4,soft,0\nL2,2024-03-31,0.2,soft,0\nL1,2024-03-31,0.4,soft,1\n",
            ":4:1:",
            "(row 2)",
        ),
    ],
)
def test_bad_cells_are_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, where: str, words: str
) -> None:
    path = _write(tmp_path, GOOD + body)
    assert main(["fit-pd", str(path), "--target", "default_12m"]) == 2
    err = capsys.readouterr().err
    assert where in err and words in err and "Traceback" not in err


def test_missing_column_and_empty_windows_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit-pd", str(TAPE), "--target", "default_24m"]) == 2
    err = capsys.readouterr().err
    assert "no column 'default_24m'" in err and "synthetic_pd_tape.csv:1:" in err
    tape = pd.read_csv(TAPE)
    tape.loc[tape["observation_date"] >= "2023-09-30", "default_12m"] = 0
    path = tmp_path / "late.csv"
    tape.to_csv(path, index=False)
    assert main(["fit-pd", str(path), "--target", "default_12m"]) == 2
    err = capsys.readouterr().err
    assert "validation (from 2023-09-30) window's" in err and "no default" in err
    assert main(["fit-pd", str(TAPE), "--target", "default_12m", "--oot-from", "2018-01-01"]) == 2
    assert "training (before 2018-01-01) window has no rows" in capsys.readouterr().err
    assert main(["fit-pd", str(TAPE), "--target", "default_12m", "--monotone", "industry=+1"]) == 2
    assert "categorical" in capsys.readouterr().err


def test_excel_tape_errors_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["id", "observation_date", "leverage", "default_12m"])
    sheet.append(["L1", "2024-03-31", 0.3, 0])
    sheet.append(["L2", "2024-03-31", 0.4, "yes"])
    path = tmp_path / "tape.xlsx"
    book.save(path)
    assert main(["fit-pd", str(path), "--target", "default_12m"]) == 2
    assert "tape.xlsx:3:4:" in capsys.readouterr().err


def test_shipped_synthetic_tape_is_what_the_generator_makes() -> None:
    shipped = pd.read_csv(TAPE, dtype={"id": str, "observation_date": str})
    made, true_pd = synthetic_tape(800, 2026)
    pd.testing.assert_frame_equal(shipped, made, check_dtype=False)
    assert len(true_pd) == len(made) and np.all((true_pd > 0) & (true_pd < 1))


def test_a_grade_without_training_rows_gets_the_middle_of_its_bounds() -> None:
    from ipabs.analytics.pd_model import _grade_pd

    got = _grade_pd(np.array([0.03, 0.035]))
    assert got["G5"] == pytest.approx(0.0325, abs=1e-15)
    assert got["G8"] == pytest.approx(0.4, abs=1e-15)  # sqrt(16% x 100%)
    assert got["G3"] == pytest.approx(math.sqrt(0.005 * 0.01), abs=1e-15)
    assert got["G1"] == pytest.approx(math.sqrt(0.00125 * 0.0025), abs=1e-15)
    assert all(
        lo <= got[g] < hi
        for g, lo, hi in zip(MASTER_SCALE, [0, *MASTER_SCALE.values()], MASTER_SCALE.values(), strict=False)
    )


def test_documented_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "docs" / "pd-models.md").read_text(encoding="utf-8")
    example = text.split("## Example")[1].split("\n## ")[0]
    commands = [
        line
        for block in re.findall(r"```bash\n(.*?)```", example, re.S)
        for line in block.splitlines()
        if line.startswith("ipabs fit-pd")
    ]
    assert len(commands) == 2
    monkeypatch.chdir(ROOT)
    for command in commands:
        assert main(command.replace("out/pd", str(tmp_path / "pd")).split()[1:]) == 0, command
    first = capsys.readouterr().out.split("\n{")[0]  # the second prints JSON
    shown = re.search(r"```text\n(PD model:.*?)```", example, re.S)
    assert shown is not None and first.startswith(shown.group(1))
    assert load_risk(tmp_path / "pd" / "risk.yaml").factors is not None  # copied by --base-risk
    code = re.search(r"```python\n(.*?)```", example, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    exec(code.group(1).replace('"scenarios/', f'"{ROOT}/scenarios/'), {})
    assert (tmp_path / "calibration.png").stat().st_size > 0


def _small_tape(x: np.ndarray, y: np.ndarray, industry: list[str] | None = None) -> pd.DataFrame:
    n = len(x)
    quarters = ["2020-03-31", "2020-06-30", "2020-09-30", "2020-12-31"]
    frame = pd.DataFrame(
        {"id": [f"L{i}" for i in range(n)], "observation_date": [quarters[i % 4] for i in range(n)], "x": x}
    )
    if industry is not None:
        frame["industry"] = industry
    frame["default_12m"] = y
    return frame


def test_logistic_refuses_separated_data() -> None:
    """A feature that splits defaulters from the rest has no finite maximum likelihood
    estimate: an error, not coefficients of thousands with a PD of 0."""
    x = np.random.default_rng(0).random(400)
    with pytest.raises(DealError, match="separate defaulters"):
        fit_pd(_small_tape(x, (x > 0.8).astype(int)), "default_12m")
    rng = np.random.default_rng(1)
    industry = ["bio" if i % 10 == 0 else "soft" for i in range(400)]
    y = np.where(np.array(industry) == "bio", 0, (rng.random(400) < 0.2).astype(int))
    with pytest.raises(DealError, match="'bio' has no default among its 40 training rows"):
        fit_pd(_small_tape(rng.random(400), y, industry), "default_12m")
