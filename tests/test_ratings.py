"""Rating tables: the shipped default, the horizon rule, lookups, user tables (YAML and CSV),
validation with located errors, and the ``ipabs ratings`` command."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ipabs.analytics.ratings import RatingTable, load_rating_table, rank
from ipabs.cli import EXIT_INVALID, EXIT_OK, main
from ipabs.errors import DealError, IpabsError

# Moody's WARF rating factors (10-year idealized default probability x 10,000), best first,
# with the S&P-style symbols the shipped table accepts for them
WARF = {
    "Aaa": 1, "Aa1": 10, "Aa2": 20, "Aa3": 40, "A1": 70, "A2": 120, "A3": 180, "Baa1": 260,
    "Baa2": 360, "Baa3": 610, "Ba1": 940, "Ba2": 1350, "Ba3": 1766, "B1": 2220, "B2": 2720,
    "B3": 3490, "Caa1": 4770, "Caa2": 6500, "Caa3": 8070, "Ca": 10000,
}  # fmt: skip
ALIASES = "AAA AA+ AA AA- A+ A A- BBB+ BBB BBB- BB+ BB BB- B+ B B- CCC+ CCC CCC- CC".split()

GRID_YAML = """\
name: Example grid
provenance: illustrative numbers for the tests
severity: 60%
ratings:
  - rating: AAA
    default_probability: {1: 0.0001, 3: 0.0005, 5: 0.001}
  - rating: AA
    aliases: [AA_flat]
    default_probability: {5: 0.0045, 1: 0.001, 3: 0.003}
  - rating: A
    default_probability: {1: 0.003, 3: 0.01, 5: 0.02}
"""

GRID_CSV = """\
# name: Example grid
# provenance: illustrative numbers
# provenance: for the tests
# Note: a free-text comment is ignored
# severity: 0.6
rating,aliases,1,3,5
AAA,,0.0001,0.0005,0.001
AA,AA_flat,0.001,0.003,0.0045
A,,0.003,0.01,2%
"""


@pytest.fixture(scope="module")
def table() -> RatingTable:
    return load_rating_table()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the shipped table


def test_shipped_table_reproduces_the_warf_factors_at_ten_years(table: RatingTable) -> None:
    assert table.ratings == tuple(WARF)
    assert table.source == "ipabs/data/ratings/default.yaml"
    for rating, factor in WARF.items():
        assert table.default_probability(rating, 10) == factor / 10_000
        assert round(table.default_probability(rating, 10) * 10_000, 9) == factor
        assert table.expected_loss(rating, 10) == pytest.approx(factor / 10_000 * 0.55, rel=1e-15)


def test_shipped_table_documents_itself(table: RatingTable) -> None:
    assert table.name
    for words in ("WARF", "10,000", "1 - (1 - p10)^(h/10)", "[0.25, 10]", "0.55", "not a published figure"):
        assert words in table.provenance
    assert table.severity == 0.55 and table.min_horizon_years == 0.25 and table.horizons == (10.0,)
    assert table.expected_losses is None


@pytest.mark.parametrize("horizon", [1, 5, 0.25, 2.5, 7])
def test_horizon_rule_is_constant_hazard(table: RatingTable, horizon: float) -> None:
    for rating, factor in WARF.items():
        p10 = factor / 10_000
        expected = 1 - (1 - p10) ** (horizon / 10)
        assert table.default_probability(rating, horizon) == pytest.approx(expected, rel=1e-12, abs=0)
        assert table.expected_loss(rating, horizon) == pytest.approx(0.55 * expected, rel=1e-12, abs=0)


def test_horizon_rule_by_hand(table: RatingTable) -> None:
    # Baa2: 1 - 0.964^0.1 and 1 - 0.964^0.5
    assert table.default_probability("Baa2", 1) == pytest.approx(0.0036596854051, rel=1e-10)
    assert table.default_probability("Baa2", 5) == pytest.approx(1 - math.sqrt(0.964), rel=1e-12)


def test_horizons_are_clamped_to_quarter_year_and_ten_years(table: RatingTable) -> None:
    assert table.horizon_used(0) == 0.25
    assert table.horizon_used(0.1) == 0.25
    assert table.horizon_used(3) == 3
    assert table.horizon_used(30) == 10
    for rating in WARF:
        assert table.default_probability(rating, 0.0) == table.default_probability(rating, 0.25)
        assert table.default_probability(rating, 0.01) == table.default_probability(rating, 0.25)
        assert table.default_probability(rating, 25) == table.default_probability(rating, 10)
        assert table.expected_loss(rating, 25) == table.expected_loss(rating, 10)
    assert table.default_probability("Aaa", 0.1) == pytest.approx(1 - 0.9999**0.025, rel=1e-12)


@pytest.mark.parametrize("horizon", [-1, math.nan, math.inf, "5", True])
def test_a_horizon_must_be_a_finite_number(table: RatingTable, horizon: object) -> None:
    with pytest.raises(IpabsError, match="horizon_years"):
        table.default_probability("Aaa", horizon)  # type: ignore[arg-type]


def test_thresholds_rise_with_horizon_and_to_worse_ratings(table: RatingTable) -> None:
    horizons = [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 4.2, 5, 7, 9.9, 10, 12]
    for metric in (table.default_probability, table.expected_loss):
        grid = [[metric(r, h) for h in horizons] for r in table.ratings]
        for row in grid:
            assert row == sorted(row)
        for h in range(len(horizons)):
            column = [row[h] for row in grid]
            assert column == sorted(column)
            assert all(0 <= v <= 1 for v in column)


def test_ca_defaults_for_certain_at_every_horizon(table: RatingTable) -> None:
    # its 10-year probability is 1, so the constant hazard is infinite
    assert table.default_probability("Ca", 0.5) == 1.0
    assert table.expected_loss("Ca", 0.5) == 0.55


# --------------------------------------------------------------------------- names


def test_aliases_map_one_to_one_in_order(table: RatingTable) -> None:
    for moody, alias in zip(WARF, ALIASES, strict=True):
        assert table.canonical(alias) == moody
        assert table.canonical(moody) == moody
        assert table.default_probability(alias, 3) == table.default_probability(moody, 3)
        assert rank(table, alias) == rank(table, moody) == list(WARF).index(moody)
    assert rank(table, "AAA") == 0 and rank(table, "CC") == 19
    assert rank(table, "A") < rank(table, "BBB+")


@pytest.mark.parametrize("name", ["aaa", "Aaa1", "BBB+ ", "", "C"])
def test_unknown_rating_lists_the_known_ones(table: RatingTable, name: str) -> None:
    with pytest.raises(IpabsError) as exc:
        table.canonical(name)
    message = str(exc.value)
    assert f"unknown rating {name!r}" in message
    assert "Aaa (AAA)" in message and "Ca (CC)" in message
    with pytest.raises(IpabsError):
        rank(table, name)
    with pytest.raises(IpabsError):
        table.expected_loss(name, 1)


def test_symbols_are_case_sensitive_with_a_hint(table: RatingTable) -> None:
    with pytest.raises(IpabsError, match=r"did you mean 'Aaa'\?"):
        table.default_probability("aaa", 1)
    with pytest.raises(IpabsError, match=r"did you mean 'BBB'\?"):
        table.canonical("bbb")


# --------------------------------------------------------------------------- rating lookups


@pytest.mark.parametrize("horizon", [1, 3.7, 10, 0.1, 15])
def test_rating_for_default_probability_boundaries(table: RatingTable, horizon: float) -> None:
    for i, rating in enumerate(table.ratings[:-1]):
        threshold = table.default_probability(rating, horizon)
        assert table.rating_for_default_probability(threshold, horizon) == rating  # a tie meets it
        above = math.nextafter(threshold, 1.0)
        assert table.rating_for_default_probability(above, horizon) == table.ratings[i + 1]
    assert table.rating_for_default_probability(0.0, horizon) == "Aaa"
    assert table.rating_for_default_probability(1.0, horizon) == "Ca"  # Ca's threshold is 1
    assert table.rating_for_default_probability(math.nan, horizon) is None


@pytest.mark.parametrize("horizon", [1, 3.7, 10, 0.1, 15])
def test_rating_for_expected_loss_boundaries(table: RatingTable, horizon: float) -> None:
    for i, rating in enumerate(table.ratings):
        threshold = table.expected_loss(rating, horizon)
        assert table.rating_for_expected_loss(threshold, horizon) == rating
        above = math.nextafter(threshold, 1.0)
        following = table.ratings[i + 1] if i + 1 < len(table.ratings) else None
        assert table.rating_for_expected_loss(above, horizon) == following
    assert table.rating_for_expected_loss(0.56, horizon) is None  # worse than Ca's 0.55
    assert table.rating_for_expected_loss(math.nan, horizon) is None
    assert table.rating_for_expected_loss(-1e-18, horizon) == "Aaa"


def test_rating_for_by_hand(table: RatingTable) -> None:
    # 5-year expected loss of 1%: Baa2's threshold is 0.55 x (1 - 0.964^0.5) = 0.9991%, Baa3's 1.70%
    assert table.rating_for_expected_loss(0.01, 5) == "Baa3"
    assert table.rating_for_expected_loss(0.0099, 5) == "Baa2"
    assert table.rating_for_default_probability(0.036, 10) == "Baa2"
    assert table.rating_for_default_probability(0.0361, 10) == "Baa3"


# --------------------------------------------------------------------------- user tables


def test_yaml_grid_interpolates_in_log_survival(tmp_path: Path) -> None:
    t = load_rating_table(write(tmp_path, "grid.yaml", GRID_YAML))
    assert t.ratings == ("AAA", "AA", "A") and t.horizons == (1.0, 3.0, 5.0)
    assert t.severity == 0.6 and t.canonical("AA_flat") == "AA"
    # at grid points the numbers as written
    assert t.default_probability("AA", 3) == 0.003
    # 2 years, halfway between 1 and 3: survival is the geometric mean
    assert t.default_probability("AAA", 2) == pytest.approx(1 - math.sqrt(0.9999 * 0.9995), rel=1e-12)
    # 4 years for A: halfway from 3 to 5
    assert t.default_probability("A", 4) == pytest.approx(1 - math.sqrt(0.99 * 0.98), rel=1e-12)
    # 3.5 years for AA: a quarter of the way from 3 to 5
    assert t.default_probability("AA", 3.5) == pytest.approx(1 - 0.997**0.75 * 0.9955**0.25, rel=1e-12)
    # before the first horizon, from survival 1 at time 0; below 0.25 years, clamped
    assert t.default_probability("A", 0.5) == pytest.approx(1 - 0.997**0.5, rel=1e-12)
    assert t.default_probability("A", 0.1) == pytest.approx(1 - 0.997**0.25, rel=1e-12)
    # beyond the last horizon, the last value
    assert t.default_probability("A", 8) == 0.02
    assert t.expected_loss("A", 4) == pytest.approx(0.6 * (1 - math.sqrt(0.99 * 0.98)), rel=1e-12)
    assert "interpolated linearly in its logarithm" in t.horizon_rule


def test_csv_grid_equals_the_yaml_grid(tmp_path: Path) -> None:
    y = load_rating_table(write(tmp_path, "grid.yaml", GRID_YAML))
    c = load_rating_table(write(tmp_path, "grid.csv", GRID_CSV))
    assert c.name == "Example grid" and c.provenance == "illustrative numbers for the tests"
    assert c.source == str(tmp_path / "grid.csv")
    assert (c.ratings, c.horizons, c.default_probabilities, c.aliases) == (
        y.ratings,
        y.horizons,
        y.default_probabilities,
        y.aliases,
    )
    for h in (0.1, 1, 2, 4.4, 6):
        for r in c.ratings:
            assert c.expected_loss(r, h) == y.expected_loss(r, h)


def test_csv_with_a_byte_order_mark_and_one_probability_per_rating(tmp_path: Path) -> None:
    text = (
        "# name: Five-year table\n# provenance: illustrative\n# severity: 0.4\n# horizon_years: 5\n"
        "# min_horizon_years: 1\n"
        "rating,aliases,default_probability\nAAA,Aaa,0.001\nBBB,Baa2 BBB_,0.05\nB,,0.3\n"
    )
    path = tmp_path / "single.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    t = load_rating_table(path)
    assert t.horizons == (5.0,) and t.min_horizon_years == 1.0
    assert t.canonical("Baa2") == "BBB" and t.canonical("BBB_") == "BBB"
    assert t.default_probability("BBB", 2) == pytest.approx(1 - 0.95**0.4, rel=1e-12)
    assert t.default_probability("BBB", 0.5) == t.default_probability("BBB", 1)  # clamped to 1 year
    assert t.default_probability("BBB", 9) == 0.05  # beyond 5 years: the 5-year value
    assert t.expected_loss("B", 5) == pytest.approx(0.12)


def test_yaml_one_probability_at_a_stated_horizon(tmp_path: Path) -> None:
    text = """\
name: Three-year table
provenance: illustrative
horizon_years: 3
severity: 0.5
ratings:
  - {rating: AAA, default_probability: "0.03%"}
  - {rating: A, aliases: A_plain, default_probability: 0.006}
"""
    t = load_rating_table(write(tmp_path, "three.yml", text))
    assert t.default_probability("AAA", 3) == pytest.approx(0.0003)
    assert t.default_probability("A", 1) == pytest.approx(1 - 0.994 ** (1 / 3), rel=1e-12)
    assert t.default_probability("A", 6) == 0.006
    assert t.canonical("A_plain") == "A"
    assert "PD(h) = 1 - (1 - PD(3))^(h/3)" in t.horizon_rule


def test_explicit_expected_loss_grid(tmp_path: Path) -> None:
    text = """\
name: With expected losses
provenance: illustrative
ratings:
  - rating: AAA
    default_probability: {1: 0.001, 5: 0.01}
    expected_loss: {1: 0.0004, 5: 0.005}
  - rating: BBB
    default_probability: {1: 0.01, 5: 0.05}
    expected_loss: {1: 0.006, 5: 0.03}
"""
    t = load_rating_table(write(tmp_path, "el.yaml", text))
    assert t.severity is None and t.expected_losses == ((0.0004, 0.005), (0.006, 0.03))
    assert t.expected_loss("BBB", 5) == 0.03
    assert t.expected_loss("BBB", 3) == pytest.approx(1 - 0.994**0.5 * 0.97**0.5, rel=1e-12)
    assert t.expected_loss("AAA", 0.5) == pytest.approx(1 - 0.9996**0.5, rel=1e-12)
    assert t.rating_for_expected_loss(0.03, 7) == "BBB"
    assert t.rating_for_expected_loss(0.0301, 7) is None

    csv_text = (
        "# name: EL\n# provenance: x\n"
        "rating,1,5,el_1,el_5\nAAA,0.001,0.01,0.0004,0.005\nBBB,0.01,0.05,0.006,0.03\n"
    )
    c = load_rating_table(write(tmp_path, "el.csv", csv_text))
    assert c.expected_losses == t.expected_losses and c.default_probabilities == t.default_probabilities


def test_rating_for_returns_none_below_the_last_threshold(tmp_path: Path) -> None:
    t = load_rating_table(write(tmp_path, "grid.yaml", GRID_YAML))
    assert t.rating_for_default_probability(0.02, 5) == "A"
    assert t.rating_for_default_probability(0.0201, 5) is None
    assert t.rating_for_default_probability(1.0, 1) is None


def test_default_table_is_loaded_once_and_tables_pass_through(table: RatingTable) -> None:
    assert load_rating_table() is load_rating_table(None) is table
    assert load_rating_table(table) is table


def test_tables_pickle_and_replace(table: RatingTable) -> None:
    # worker processes receive tables by pickle; dataclasses.replace re-validates
    again = pickle.loads(pickle.dumps(table))
    assert again == table and again.canonical("BBB") == "Baa2"
    lighter = dataclasses.replace(table, severity=0.4)
    assert lighter.expected_loss("Baa2", 10) == pytest.approx(0.036 * 0.4)
    with pytest.raises(DealError, match="severity"):
        dataclasses.replace(table, severity=1.5)


def test_direct_construction_is_validated() -> None:
    t = RatingTable("x", "y", ["A", "B"], [1, 5], [[0.01, 0.02], [0.02, 0.05]], severity=0.5)  # type: ignore[arg-type]
    assert t.ratings == ("A", "B") and t.default_probabilities == ((0.01, 0.02), (0.02, 0.05))
    assert hash(t) == hash(RatingTable("x", "y", ("A", "B"), (1.0, 5.0), ((0.01, 0.02), (0.02, 0.05)), 0.5))
    with pytest.raises(DealError, match=r"default_probabilities\[1\]\[1\]: .*falls with the horizon"):
        RatingTable("x", "y", ("A", "B"), (1.0, 5.0), ((0.01, 0.02), (0.02, 0.015)), 0.5)
    with pytest.raises(DealError, match="severity"):
        RatingTable("x", "y", ("A", "B"), (1.0, 5.0), ((0.01, 0.02), (0.02, 0.05)))
    with pytest.raises(DealError, match="one row per rating"):
        RatingTable("x", "y", ("A", "B"), (1.0, 5.0), ((0.01, 0.02),), 0.5)


# --------------------------------------------------------------------------- output


def test_to_frame(table: RatingTable) -> None:
    frame = table.to_frame((1, 2.5))
    assert list(frame.index) == list(WARF) and frame.index.name == "rating"
    assert list(frame.columns) == ["aliases", "pd_1y", "pd_2.5y", "el_1y", "el_2.5y"]
    assert frame.loc["Baa2", "aliases"] == "BBB"
    assert frame.loc["Baa2", "pd_2.5y"] == table.default_probability("Baa2", 2.5)
    assert frame.loc["Baa2", "el_1y"] == table.expected_loss("Baa2", 1)
    assert list(table.to_frame().columns)[-1] == "el_10y"


def test_to_dict_is_json_and_reloads_as_the_same_table(table: RatingTable, tmp_path: Path) -> None:
    doc = json.loads(json.dumps(table.to_dict()))
    assert doc["source"] == table.source and doc["severity"] == 0.55
    assert doc["ratings"][8] == {"rating": "Baa2", "aliases": ["BBB"], "default_probability": {"10": 0.036}}
    assert "constant hazard" in doc["horizon_rule"]
    del doc["source"], doc["horizon_rule"]
    again = load_rating_table(write(tmp_path, "again.yaml", yaml.safe_dump(doc)))
    for field in (
        "name",
        "provenance",
        "ratings",
        "horizons",
        "default_probabilities",
        "severity",
        "aliases",
    ):
        assert getattr(again, field) == getattr(table, field), field


# --------------------------------------------------------------------------- validation


def _error(path: Path) -> str:
    with pytest.raises(DealError) as exc:
        load_rating_table(path)
    assert exc.value.issues
    return str(exc.value)


YAML_HEAD = "name: Bad\nprovenance: for the tests\nseverity: 0.5\nratings:\n"

YAML_ERRORS = [
    (
        "unsorted",
        YAML_HEAD
        + "  - {rating: Aa1, default_probability: 0.001}\n  - {rating: Aaa, default_probability: 0.002}\n",
        "6:14",
        "ratings[1].rating",
        "ordered best first",
    ),
    (
        "probability above 1",
        YAML_HEAD + "  - {rating: AAA, default_probability: 1.2}\n",
        "5:40",
        "ratings[0].default_probability",
        "must lie in [0, 1]",
    ),
    (
        "duplicate rating",
        YAML_HEAD + "  - {rating: X, default_probability: 0.1}\n  - {rating: X, default_probability: 0.2}\n",
        "6:14",
        "ratings[1].rating",
        "duplicate rating name 'X' (first at ratings[0].rating, line 5)",
    ),
    (
        "alias of another rating",
        YAML_HEAD + "  - {rating: X, default_probability: 0.1}\n"
        "  - {rating: Y, aliases: [Z, X], default_probability: 0.2}\n",
        "6:30",
        "ratings[1].aliases[1]",
        "duplicate rating name 'X'",
    ),
    (
        "falls with the horizon",
        YAML_HEAD + "  - rating: X\n    default_probability: {1: 0.02, 3: 0.01}\n",
        "6:39",
        "ratings[0].default_probability.3",
        "falls with the horizon",
    ),
    (
        "worse rating, lower probability",
        YAML_HEAD + "  - {rating: X, default_probability: 0.2}\n  - {rating: Y, default_probability: 0.1}\n",
        "6:38",
        "ratings[1].default_probability",
        "below that of the better rating 'X'",
    ),
    (
        "unknown key",
        YAML_HEAD.replace("severity", "severty") + "  - {rating: X, default_probability: 0.1}\n",
        "3:1",
        "severty",
        "did you mean 'severity'?",
    ),
    (
        "misspelt rating key",
        YAML_HEAD + "  - {rating: X, default_probabilty: 0.1}\n",
        "5:17",
        "ratings[0].default_probabilty",
        "did you mean 'default_probability'?",
    ),
    (
        "severity out of range",
        YAML_HEAD.replace("0.5", "0") + "  - {rating: X, default_probability: 0.1}\n",
        "3:11",
        "severity",
        "(0, 1]",
    ),
    (
        "no severity",
        "name: Bad\nprovenance: x\nratings:\n  - {rating: X, default_probability: 0.1}\n",
        "1:1",
        "",
        "no severity",
    ),
    (
        "missing provenance",
        "name: Bad\nseverity: 0.5\nratings:\n  - {rating: X, default_probability: 0.1}\n",
        "1:1",
        "missing required field 'provenance'",
        "add `provenance:`",
    ),
    (
        "not a number",
        YAML_HEAD + "  - {rating: X, default_probability: lots}\n",
        "5:38",
        "ratings[0].default_probability",
        "'lots' is not a number: write e.g. 0.02 or '2%'",
    ),
    (
        "horizon not a number",
        YAML_HEAD + "  - rating: X\n    default_probability: {1: 0.01, soon: 0.02}\n",
        "6:36",
        "ratings[0].default_probability.soon",
        "a horizon must be a number of years, got 'soon'",
    ),
    (
        "horizon twice",
        YAML_HEAD + "  - rating: X\n    default_probability: {1: 0.01, '1.0': 0.02}\n",
        "6:36",
        "ratings[0].default_probability.1.0",
        "horizon 1.0 is given twice (also as 1)",
    ),
    (
        "horizons differ",
        YAML_HEAD + "  - rating: X\n    default_probability: {1: 0.01, 3: 0.02}\n"
        "  - rating: Y\n    default_probability: {1: 0.02, 5: 0.03}\n",
        "8:30",
        "ratings[1].default_probability.1",
        "differ from those of the first rating",
    ),
    (
        "mixed shapes",
        YAML_HEAD + "  - {rating: X, default_probability: 0.1}\n"
        "  - rating: Y\n    default_probability: {1: 0.02}\n",
        "7:26",
        "ratings[1].default_probability",
        "must be one number",
    ),
    (
        "horizon_years with a grid",
        YAML_HEAD + "  - rating: X\n    default_probability: {1: 0.01}\nhorizon_years: 5\n",
        "7:1",
        "horizon_years",
        "applies only to one probability per rating",
    ),
    (
        "severity and expected losses",
        YAML_HEAD + "  - {rating: X, default_probability: 0.1, expected_loss: 0.05}\n",
        "3:1",
        "severity",
        "not both",
    ),
    (
        "expected loss above the probability",
        "name: Bad\nprovenance: x\nratings:\n  - {rating: X, default_probability: 0.1, expected_loss: 0.2}\n",
        "4:58",
        "ratings[0].expected_loss",
        "exceeds its default probability",
    ),
    (
        "minimum horizon beyond the table",
        YAML_HEAD + "  - {rating: X, default_probability: 0.1}\nmin_horizon_years: 12\n",
        "6:20",
        "min_horizon_years",
        "at most the longest horizon, 10",
    ),
    ("not a mapping", "- 1\n- 2\n", "1:1", "", "must be a mapping"),
    ("no ratings", YAML_HEAD.replace("ratings:\n", "ratings: []\n"), "4:10", "ratings", "no ratings"),
    ("YAML syntax", YAML_HEAD + "  - {rating: X\n", "6:1", "", "YAML syntax error"),
]


@pytest.mark.parametrize(
    ("case", "text", "where", "field", "message"), YAML_ERRORS, ids=[c[0] for c in YAML_ERRORS]
)
def test_yaml_errors_are_located(
    tmp_path: Path, case: str, text: str, where: str, field: str, message: str
) -> None:
    path = write(tmp_path, "table.yaml", text)
    error = _error(path)
    assert f"{path}:{where}: {field}" in error
    assert message in error


CSV_HEAD = "# name: Bad\n# provenance: for the tests\n# severity: 0.5\n"

CSV_ERRORS = [
    (
        "probability above 1",
        CSV_HEAD + "rating,1,5\nAAA,0.01,1.5\n",
        "5:10",
        "column '5'",
        "must lie in [0, 1]",
    ),
    (
        "falls with the horizon",
        CSV_HEAD + "rating,1,5\nAAA,0.02,0.01\n",
        "5:10",
        "column '5'",
        "falls with the horizon",
    ),
    (
        "worse rating, lower probability",
        CSV_HEAD + "rating,1,5\nBBB,0.02,0.03\nB,0.01,0.04\n",
        "6:3",
        "column '1'",
        "below that of the better rating 'BBB'",
    ),
    ("unsorted", CSV_HEAD + "rating,10\nBBB,0.01\nAA,0.02\n", "6:1", "column 'rating'", "ordered best first"),
    (
        "duplicate rating",
        CSV_HEAD + "rating,10\nX,0.01\nX,0.02\n",
        "6:1",
        "column 'rating'",
        "duplicate rating",
    ),
    (
        "unknown column",
        CSV_HEAD + "rating,alias,10\nX,Y,0.01\n",
        "4:8",
        "column 'alias'",
        "did you mean 'aliases'?",
    ),
    ("cell count", CSV_HEAD + "rating,1,5\nX,0.01\n", "5:1", "", "2 cells for 3 columns"),
    ("not a number", CSV_HEAD + "rating,1,5\nX,0.01,n/a\n", "5:8", "column '5'", "'n/a' is not a number"),
    ("empty cell", CSV_HEAD + "rating,1,5\nX,0.01,\n", "5:8", "column '5'", "the value is empty"),
    (
        "missing provenance",
        "# name: Bad\n# severity: 0.5\nrating,10\nX,0.1\n",
        "1:1",
        "",
        "missing `# provenance",
    ),
    (
        "misspelt field",
        CSV_HEAD + "# min_horizon_year: 1\nrating,10\nX,0.1\n",
        "4:3",
        "min_horizon_year",
        "unknown key 'min_horizon_year' (did you mean 'min_horizon_years'?)",
    ),
    (
        "severity twice",
        CSV_HEAD + "# severity: 0.4\nrating,10\nX,0.1\n",
        "4:3",
        "severity",
        "duplicate key 'severity' (first at line 3)",
    ),
    (
        "severity not a number",
        "# name: Bad\n# provenance: x\n#   severity:  half\nrating,10\nX,0.1\n",
        "3:16",
        "severity",
        "'half' is not a number",
    ),
    (
        "mixed shapes",
        CSV_HEAD + "rating,default_probability,5\nX,0.1,0.2\n",
        "4:1",
        "",
        "default_probability and horizon columns are mixed",
    ),
    ("no severity", "# name: Bad\n# provenance: x\nrating,10\nX,0.1\n", "1:1", "", "no severity"),
]


@pytest.mark.parametrize(
    ("case", "text", "where", "field", "message"), CSV_ERRORS, ids=[c[0] for c in CSV_ERRORS]
)
def test_csv_errors_are_located(
    tmp_path: Path, case: str, text: str, where: str, field: str, message: str
) -> None:
    path = write(tmp_path, "table.csv", text)
    error = _error(path)
    assert f"{path}:{where}: {field}" in error
    assert message in error


def test_tables_and_multiples_share_the_deal_files_error_translation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one validation path for every input: a change to how pydantic's errors become located
    # messages reaches YAML and CSV rating tables and multiples files as it reaches deal files
    import ipabs.deal.validate as validate
    from ipabs.analytics.implied import load_multiples

    seen = []

    def spy(exc: object, data: object, smap: object, root: type) -> list:
        seen.append(root.__name__)
        return [
            dataclasses.replace(i, message="TRANSLATED " + i.message)
            for i in translate(exc, data, smap, root)
        ]

    translate = validate.translate
    monkeypatch.setattr(validate, "translate", spy)
    bad_yaml = write(tmp_path, "t.yaml", YAML_HEAD + "  - {rating: X, default_probability: lots}\n")
    bad_csv = write(tmp_path, "t.csv", CSV_HEAD + "rating,1\nX,lots\n")
    bad_multiples = write(tmp_path, "m.yaml", "AAA: lots\n")
    assert f"{bad_yaml}:5:38: ratings[0].default_probability: TRANSLATED" in _error(bad_yaml)
    assert f"{bad_csv}:5:3: column '1': TRANSLATED" in _error(bad_csv)
    with pytest.raises(DealError, match=r"m.yaml:1:6: AAA: TRANSLATED"):
        load_multiples(bad_multiples, load_rating_table())
    assert seen == ["RatingTableFile", "RatingTableFile", "MultiplesFile"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = YAML_HEAD.replace("0.5", "2") + (
        "  - {rating: A, default_probability: 0.3}\n  - {rating: AAA, default_probability: 0.1}\n"
    )
    error = _error(write(tmp_path, "many.yaml", text))
    assert "severity 2 must lie in (0, 1]" in error
    assert "ordered best first" in error
    assert "below that of the better rating 'A'" in error


@pytest.mark.parametrize(
    ("name", "message"),
    [("table.json", "unsupported rating table file type '.json'"), ("missing.yaml", "file not found")],
)
def test_unreadable_files(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text("{}", encoding="utf-8")
    assert f"{path}: {message}" in _error(path)


def test_a_directory_is_not_a_table(tmp_path: Path) -> None:
    folder = tmp_path / "tables.yaml"
    folder.mkdir()
    assert "is a directory" in _error(folder)


# --------------------------------------------------------------------------- the command


def test_ratings_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("Moody's idealized 10-year default probabilities")
    assert "provenance: Moody's rating factors" in out and "horizon rule: constant hazard" in out
    assert "severity 0.55" in out
    assert "cumulative default probability" in out and "expected loss" in out
    header = next(line for line in out.splitlines() if line.startswith("rating"))
    assert header.split() == ["rating", "alias", "1y", "2y", "3y", "5y", "7y", "10y"]
    baa2 = [line.split() for line in out.splitlines() if line.startswith("Baa2 ")]
    assert baa2[0][1] == "BBB" and baa2[0][-1] == "3.600%"  # PD at 10 years
    assert baa2[1][-1] == "1.980%"  # EL at 10 years: 0.036 x 0.55


def test_ratings_command_json(capsys: pytest.CaptureFixture[str], table: RatingTable) -> None:
    assert main(["ratings", "--json", "--horizons", "0.1,1,5,12"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["table"]["name"] == table.name and doc["table"]["source"] == table.source
    assert doc["horizons"] == [0.1, 1, 5, 12] and doc["horizons_used"] == [0.25, 1, 5, 10]
    row = doc["ratings"][8]
    assert row["rating"] == "Baa2" and row["aliases"] == ["BBB"]
    assert row["default_probability"] == [table.default_probability("Baa2", h) for h in (0.1, 1, 5, 12)]
    assert row["expected_loss"] == [table.expected_loss("Baa2", h) for h in (0.1, 1, 5, 12)]


def test_ratings_command_with_a_user_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "grid.csv", GRID_CSV)
    assert main(["ratings", "--table", str(path), "--horizons", "2,8"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"Example grid (from {path})" in out
    assert "note: read at the clamped horizon: 8y -> 5y" in out
    assert "AA_flat" in out


def test_ratings_command_reports_a_bad_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "bad.csv", CSV_HEAD + "rating,1,5\nAAA,0.01,1.5\n")
    assert main(["ratings", "--table", str(path)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{path}:5:10: column '5': default probability 1.5" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0,1", "a", "", "1,inf"])
def test_ratings_command_rejects_bad_horizons(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ratings", "--horizons", value])
    assert exc.value.code == 2
    assert "--horizons" in capsys.readouterr().err


def test_command_module_imports_light() -> None:
    code = "import sys, ipabs.commands.ratings, ipabs.analytics.ratings; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- the documentation

DOC = Path(__file__).resolve().parents[1] / "docs" / "ratings.md"


def test_documented_tables_load_and_the_python_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DOC.read_text(encoding="utf-8")
    files = re.findall(r"```(?:yaml|csv)\n# (\S+\.(?:yaml|csv))\n(.*?)```", text, re.S)
    assert {name for name, _ in files} == {"five_year.yaml", "my_grid.yaml", "my_grid.csv", "ten_year.csv"}
    for name, body in files:
        write(tmp_path, name, f"# {name}\n{body}")
        assert load_rating_table(tmp_path / name).ratings
    (tmp_path / "scenarios").symlink_to(DOC.parents[1] / "scenarios")  # examples use shipped deals
    monkeypatch.chdir(tmp_path)
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        exec(compile(block, str(DOC), "exec"), {})
    grid = load_rating_table("my_grid.yaml")
    assert grid.default_probability("AAA", 2) == pytest.approx(1 - math.sqrt(0.9998 * 0.999), rel=1e-12)
    assert f"{100 * grid.default_probability('AAA', 2):.4f}%" == "0.0600%"
    assert grid.default_probability("AAA", 0.25) == pytest.approx(1 - 0.9998**0.5, rel=1e-12)
    assert grid.rating_for_default_probability(0.004, 3) == "AA"
    assert grid.rating_for_expected_loss(0.05, 3) is None
    assert load_rating_table().rating_for_expected_loss(0.01, 5) == "Baa3"


def test_documented_command_output_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    shown = re.search(r"ipabs ratings --horizons 1,5,10\n```\n\n```text\n(.*?)```", text, re.S)
    assert shown is not None
    assert main(["ratings", "--horizons", "1,5,10"]) == EXIT_OK
    assert capsys.readouterr().out == shown.group(1)
