"""``ipabs fit-pd``: fit obligor default probabilities from a loan performance tape."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ipabs.commands._common import EXIT_OK, _table
from ipabs.format import pct, pct_given

DESCRIPTION = """\
Fit a 12-month PD model (logistic regression or monotone gradient boosting) on a loan
performance tape (one row per loan and observation date, a 0/1 target), validate it out of
time (AUC, KS, Brier score, calibration by master-scale grade with Jeffreys intervals) and
print the validation. --out writes a risk assumptions file whose pd_by_grade `ipabs mc --risk`
reads, the calibration table and chart, the coefficients and, with --score, each obligor's PD
and grade (docs/pd-models.md)."""


def register(subparsers: Any) -> None:
    """Add the ``fit-pd`` sub-command."""
    p = subparsers.add_parser(
        "fit-pd",
        help="fit obligor PDs from a loan performance tape and validate them out of time",
        description=DESCRIPTION,
    )
    p.add_argument("tape", metavar="TAPE", help="performance tape (CSV or .xlsx)")
    p.add_argument("--target", required=True, metavar="COLUMN", help="0/1 target column, e.g. default_12m")
    p.add_argument(
        "--features",
        metavar="A,B,C",
        help="feature columns (default: every column but id, observation_date and the target)",
    )
    p.add_argument(
        "--model", choices=("logistic", "gbm"), default="logistic", help="model (default logistic)"
    )
    p.add_argument(
        "--monotone",
        metavar="F=+1,G=-1",
        help="gbm: features the PD rises (+1) or falls (-1) with",
    )
    p.add_argument(
        "--oot-from",
        metavar="DATE",
        help="first observation date of the validation window (default: the last quarter of the dates)",
    )
    p.add_argument("--score", metavar="OBLIGORS", help="table of obligors (obligor + features) to score")
    p.add_argument(
        "--base-risk",
        metavar="FILE",
        help="deal or risk file whose `risk` section risk.yaml copies (only pd_by_grade replaced)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="write risk.yaml, calibration.csv/.png, coefficients.csv, scores.csv"
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_fit_pd)


def _monotone(text: str | None) -> dict[str, int]:
    from ipabs.errors import IpabsError

    out: dict[str, int] = {}
    for part in filter(None, (s.strip() for s in (text or "").split(","))):
        name, _, sign = part.partition("=")
        if sign.strip() not in ("+1", "1", "-1"):
            raise IpabsError(f"--monotone {part}: write FEATURE=+1 or FEATURE=-1")
        out[name.strip()] = int(sign)
    return out


def _base_risk(path: str) -> dict[str, Any]:
    """The raw `risk` mapping of a deal or risk file, validated as a whole first."""
    from ipabs.deal.load import load_deal, load_risk
    from ipabs.deal.source import read_yaml
    from ipabs.errors import IpabsError

    data, _ = read_yaml(path)
    if isinstance(data, dict) and set(data) == {"risk"}:
        load_risk(path)
    else:
        if load_deal(path).spec.risk is None:
            raise IpabsError(f"--base-risk {path}: the deal has no `risk` section to copy")
    return dict(data["risk"])


def cmd_fit_pd(args: argparse.Namespace) -> int:
    """Fit, validate, print and write."""
    from ipabs.analytics.pd_model import fit_pd, load_obligors, load_performance_tape, score
    from ipabs.io import check_out_dir

    if args.out:
        check_out_dir(args.out)
    features = [f.strip() for f in args.features.split(",") if f.strip()] if args.features else None
    monotone = _monotone(args.monotone)
    base = _base_risk(args.base_risk) if args.base_risk else None
    tape = load_performance_tape(args.tape)
    result = fit_pd(tape, args.target, features, model=args.model, monotone=monotone, oot_from=args.oot_from)
    scores = score(result, load_obligors(args.score)) if args.score else None
    risk = _risk_document(result, base, args)
    if args.out:
        _write(args.out, result, risk, scores)
    if args.json:
        doc = result.to_dict()
        if scores is not None:
            doc["scores"] = [
                {"obligor": o, "pd": float(p), "grade": g} for o, p, g in scores.itertuples(index=False)
            ]
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(fit_text(result, scores))
    return EXIT_OK


def _risk_document(result: Any, base: dict[str, Any] | None, args: argparse.Namespace) -> str:
    """The text of risk.yaml, validated as a risk file before anything is written."""
    import yaml
    from pydantic import ValidationError

    from ipabs.deal.risk import RiskModel
    from ipabs.errors import IpabsError

    section = result.risk_section(base)
    try:
        RiskModel.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise IpabsError(
            f"--base-risk {args.base_risk}: with the fitted pd_by_grade the risk section is invalid: "
            f"{first['msg']}"
        ) from None
    head = (
        f"# Risk assumptions written by `ipabs fit-pd` from {Path(args.tape).name} ({result.kind}, target "
        f"{result.target}).\n"
        "# pd_by_grade: each master-scale grade's mean fitted 12-month PD on the training rows\n"
        "# (docs/pd-models.md). A risk file replaces a deal's whole `risk` section: "
        + (
            f"the other fields\n# are copied from {Path(args.base_risk).name}.\n"
            if base is not None
            else "this one has no\n# correlation (defaults independent) and no recoveries; "
            "--base-risk DEAL.yaml copies a deal's.\n"
        )
    )
    return head + yaml.safe_dump({"risk": section}, sort_keys=False, allow_unicode=True)


def _write(out: str, result: Any, risk: str, scores: Any) -> None:
    from ipabs.analytics.pd_model import calibration_chart
    from ipabs.io import write_tables

    fig = calibration_chart(result)
    files: dict[str, Any] = {
        "risk.yaml": risk,
        "calibration.csv": result.calibration,
        "calibration.png": lambda target: fig.savefig(target, dpi=120),
    }
    if result.coefficients is not None:
        files["coefficients.csv"] = result.coefficients
    if scores is not None:
        files["scores.csv"] = scores
    write_tables(out, files)


def _rate(v: float) -> str:
    return "-" if v != v else pct(v)


def fit_text(result: Any, scores: Any = None) -> str:
    """The text report of a :class:`ipabs.analytics.pd_model.PDFit`."""
    head = (
        f"PD model: {result.kind} | target {result.target} | features: {', '.join(result.features)}\n"
        f"training: {result.n_train:,} rows, {result.defaults_train:,} defaults (before {result.oot_from})\n"
        f"validation: {result.n_validation:,} rows, {result.defaults_validation:,} defaults "
        f"(from {result.oot_from})\n"
        f"AUC {result.auc:.4f} | KS {result.ks:.4f} | Brier {result.brier:.5f}\n\n"
    )
    rows = []
    for r in result.calibration.itertuples():
        mark = "!" if r.outside else ""
        rows.append(
            [
                r.grade,
                f"{pct_given(r.pd_from)}-{pct_given(r.pd_to)}",
                f"{r.count:,}",
                f"{r.defaults:,}",
                _rate(r.mean_pd) + mark,
                _rate(r.observed),
                "-" if r.count == 0 else f"{_rate(r.ci_low)} - {_rate(r.ci_high)}",
                r.status,
                _rate(result.grade_pd[r.grade]),
            ]
        )
    text = head + _table(
        [
            "grade",
            "PD range",
            "rows",
            "defaults",
            "mean PD",
            "observed",
            "95% interval",
            "status",
            "risk PD",
        ],
        rows,
    )
    text += (
        "\n\nobserved: shown only with at least 30 rows; 'few defaults': under 5 defaults, a weak test"
        "\n! mean predicted PD outside the observed rate's 95% Jeffreys interval"
        "\nrisk PD: the grade's pd_by_grade (mean fitted PD of its training rows)"
    )
    if result.coefficients is not None:
        coef = [
            [r.term, f"{r.coefficient:+.5g}", f"{r.std_error:.3g}", f"{r.z:+.2f}"]
            for r in result.coefficients.itertuples()
        ]
        text += "\n\n" + _table(["term", "coefficient", "std error", "z"], coef)
    if scores is not None:
        text += "\n\n" + _table(
            ["obligor", "pd", "grade"], [[o, pct(p), g] for o, p, g in scores.itertuples(index=False)]
        )
    for note in result.notes:
        text += f"\nnote: {note}"
    return text
