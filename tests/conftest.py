"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

DEALS = Path(__file__).parent / "deals"


@pytest.fixture
def deals_dir() -> Path:
    """Folder of the small YAML deal fixtures."""
    return DEALS


@pytest.fixture
def minimal_text() -> str:
    """Text of ``tests/deals/minimal.yaml``, a small valid deal covering every section."""
    return (DEALS / "minimal.yaml").read_text(encoding="utf-8")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files in tests/golden/ from the current results",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files (``pytest --update-golden``)."""
    return bool(request.config.getoption("--update-golden"))
