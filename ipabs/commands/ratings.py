"""``ipabs ratings``: print the rating table used (shipped default or ``--table FILE``), with its
provenance and the default-probability and expected-loss thresholds per horizon."""

from __future__ import annotations

import argparse
import math
from typing import Any

DEFAULT_HORIZONS = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0)


def _horizons(text: str) -> tuple[float, ...]:
    """Parse ``--horizons 1,2,5,10``: positive finite years, at least one."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give horizons in years separated by commas, e.g. 1,2,5,10"
        ) from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r}: horizons must be positive numbers of years, e.g. 1,2,5,10"
        )
    return values


def register(subparsers: Any) -> None:
    """Add the ``ratings`` sub-command."""
    p = subparsers.add_parser(
        "ratings", help="print the rating table used: default probability and expected loss per horizon"
    )
    p.add_argument("--table", metavar="FILE", help="rating table, .yaml or .csv (default: the shipped table)")
    p.add_argument(
        "--horizons",
        type=_horizons,
        default=DEFAULT_HORIZONS,
        metavar="H,H",
        help="horizons in years (default 1,2,3,5,7,10)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.set_defaults(func=cmd_ratings)


def cmd_ratings(args: argparse.Namespace) -> int:
    """Print the rating table (text or ``--json``); a bad table file raises a located error."""
    import json

    from ipabs.analytics.ratings import load_rating_table
    from ipabs.commands._common import EXIT_OK

    table = load_rating_table(args.table)
    if args.json:
        print(json.dumps(_document(table, args.horizons), indent=2, ensure_ascii=False))
    else:
        print(_text(table, args.horizons))
    return EXIT_OK


def _document(table: Any, horizons: tuple[float, ...]) -> dict[str, Any]:
    """``table``: the table's own description; ``horizons`` and, per rating, the thresholds at
    each of them (lists aligned with ``horizons``)."""
    return {
        "table": table.to_dict(),
        "horizons": list(horizons),
        "horizons_used": [table.horizon_used(h) for h in horizons],
        "ratings": [
            {
                "rating": rating,
                "aliases": list(table.aliases[i]) if table.aliases else [],
                "default_probability": [table.default_probability(rating, h) for h in horizons],
                "expected_loss": [table.expected_loss(rating, h) for h in horizons],
            }
            for i, rating in enumerate(table.ratings)
        ],
    }


def _text(table: Any, horizons: tuple[float, ...]) -> str:
    import textwrap

    from ipabs.commands._common import _table
    from ipabs.format import pct

    if table.expected_losses is not None:
        loss = "expected loss: given by the table, interpolated as the default probability"
    else:
        loss = (
            f"expected loss: default probability x severity {table.severity:g} (an assumption of the table)"
        )
    lines = [
        f"{table.name} (from {table.source})",
        "",
        textwrap.fill(f"provenance: {table.provenance}", width=100, subsequent_indent="  "),
        textwrap.fill(f"horizon rule: {table.horizon_rule}", width=100, subsequent_indent="  "),
        textwrap.fill(loss, width=100, subsequent_indent="  "),
    ]
    clamped = [h for h in horizons if table.horizon_used(h) != h]
    if clamped:
        lines.append(
            "note: read at the clamped horizon: "
            + ", ".join(f"{h:g}y -> {table.horizon_used(h):g}y" for h in clamped)
        )
    head = ["rating", "alias", *(f"{h:g}y" for h in horizons)]
    for title, value in (
        ("cumulative default probability", table.default_probability),
        ("expected loss (fraction of the balance)", table.expected_loss),
    ):
        rows = [
            [
                rating,
                " ".join(table.aliases[i]) if table.aliases else "",
                *(pct(value(rating, h)) for h in horizons),
            ]
            for i, rating in enumerate(table.ratings)
        ]
        lines += ["", title, _table(head, rows)]
    return "\n".join(lines)
