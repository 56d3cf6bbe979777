"""Documentation stays true: the generated reference is current, documented columns exist,
and the README's examples run."""

from __future__ import annotations

import re
from pathlib import Path

import ipabs
from ipabs.docgen import render
from ipabs.engine import layout as L
from ipabs.engine.layout import COLLECTION_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def test_deal_language_reference_is_current() -> None:
    current = (ROOT / "docs" / "deal-language.md").read_text(encoding="utf-8")
    assert current == render(), "regenerate: python -m ipabs.docgen > docs/deal-language.md"


def test_every_output_field_is_documented() -> None:
    text = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    fields = (
        *COLLECTION_COLUMNS,
        *L.DEAL_FIELDS,
        *L.TRANCHE_FIELDS,
        *L.FEE_FIELDS,
        *L.ACCOUNT_FIELDS,
        *L.SUPPORT_FIELDS,
        *L.TRIGGER_FIELDS,
        *L.HEDGE_FIELDS,
    )
    missing = [f for f in fields if f"`{f}`" not in text]
    assert not missing, f"undocumented output fields: {missing}"


def test_summary_columns_are_documented() -> None:
    text = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    yaml_block = re.search(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert yaml_block is not None
    result = ipabs.run(ipabs.parse_deal(yaml_block.group(1), "README.md"))
    for column in result.summary.columns:
        assert f"`{column}`" in text, column
    for column in result.triggers.columns:
        assert f"`{column}`" in text, column


def test_readme_example_deal_runs_and_conserves_cash() -> None:
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert block is not None
    deal = ipabs.parse_deal(block.group(1), "README.md")
    from ipabs.results import conservation_residual

    for name in deal.spec.scenarios:
        result = ipabs.run(deal, name)
        assert abs(conservation_residual(result.tables)).max() < 1e-6
    base = ipabs.run(deal, "base")
    assert base.summary.loc["senior", "loss"] == 0.0
    assert base.summary.loc["senior", "principal_paid"] == 9.5e6
