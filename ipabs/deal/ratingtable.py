"""Schemas of the rating-table file and the stress-multiple file.

They are read like every other input: YAML (or a CSV rating table turned into the same data with
a :class:`~ipabs.deal.source.SourceMap`) is validated by these models and pydantic's errors are
translated into located issues by :func:`ipabs.deal.validate.translate`. What these models check
is the shape and type of each value (keys, numbers, ``"2%"``); the rules between values
(ranges, order of ratings and horizons, monotone probabilities) are checked by the rating-table
reader, with the positions the source map keeps.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, RootModel

from ipabs.deal.base import Model
from ipabs.deal.types import _finite, parse_percent


def _number(value: Any) -> Any:
    """``0.02`` or ``"2%"`` as a number; other text is an error that says how to write one."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("the value is empty: write a number, e.g. 0.02 or '2%'")
        try:
            return parse_percent(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number: write e.g. 0.02 or '2%'") from None
    return value


def _text(value: Any) -> Any:
    """A name written as a number in YAML (``rating: 1``) is still a name."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Number = Annotated[float, BeforeValidator(_number), AfterValidator(_finite)]
"""A finite number, written ``0.02`` or ``"2%"`` (the range is checked with the table's rules)."""

Text = Annotated[str, BeforeValidator(_text)]

Years = Annotated[float, AfterValidator(_finite)]
"""A horizon in years (positive: checked with the table's rules)."""

Cells = Annotated[Number | dict[Text, Number], Field(union_mode="left_to_right")]
"""One number, or a mapping of horizon in years (a key, read by the table's rules) to a number."""


class RatingEntry(Model):
    """One rating of a rating table."""

    rating: Text = Field(description="The rating's name (e.g. Aaa), unique in the table.")
    aliases: Annotated[list[Text] | Text, Field(union_mode="left_to_right")] = Field(
        default_factory=list, description="Other names accepted for the rating (e.g. AAA)."
    )
    default_probability: Cells = Field(
        description="Cumulative default probability at `horizon_years`, or a mapping of horizon "
        "(years) to cumulative default probability."
    )
    expected_loss: Cells | None = Field(
        None, description="Expected loss (share of the balance), laid out as default_probability."
    )


class RatingTableFile(Model):
    """A rating table file (YAML; a CSV table is read into the same fields)."""

    name: Text = Field(description="Short name of the table.")
    provenance: Text = Field(description="Where the numbers come from, the horizon rule, the severity.")
    severity: Number | None = Field(
        None, description="Loss given default: expected loss = default probability x severity."
    )
    horizon_years: Years | None = Field(
        None, description="Horizon of a single default probability per rating (default 10)."
    )
    min_horizon_years: Years | None = Field(None, description="Horizons below this use it (default 0.25).")
    ratings: list[RatingEntry] = Field(description="The ratings, best first.")


Multiple = Annotated[float, AfterValidator(_finite), Field(gt=0)]


class MultiplesFile(RootModel[dict[Text, Multiple]]):
    """A stress-multiple file: a mapping of rating to a positive stress multiple (``AAA: 5``)."""
