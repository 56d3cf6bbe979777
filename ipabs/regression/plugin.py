"""pytest plugin: every ``*.snapshot.yaml`` file under the test paths is checked with plain
``pytest`` (see docs/regression.md).

Each snapshot file gives one test item for its terms, one per scenario and one for its Monte
Carlo; a failure says which terms changed and which figures moved by how much. The plugin is
registered through the ``pytest11`` entry point of the ipabs package; without the installed
package, enable it with ``-p ipabs.regression.plugin`` or ``pytest_plugins``.

Options: ``--ipabs-k K`` (or the ini setting ``ipabs_k``), the standard errors a Monte Carlo
figure may move when the engine differs from the snapshot's (default 4); ``--ipabs-update``
rewrites the snapshots instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SUFFIX = ".snapshot.yaml"


class SnapshotMoved(AssertionError):
    """A snapshot's terms changed or its figures moved (the message says which)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The plugin's options."""
    group = parser.getgroup("ipabs", "ipabs snapshot checks")
    group.addoption(
        "--ipabs-k",
        type=float,
        default=None,
        help="standard errors a Monte Carlo figure may move on another engine (default 4)",
    )
    group.addoption(
        "--ipabs-update", action="store_true", default=False, help="rewrite the ipabs snapshot files"
    )
    parser.addini("ipabs_k", "standard errors a Monte Carlo figure may move on another engine", default="4")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect ``*.snapshot.yaml`` files."""
    if file_path.name.endswith(SUFFIX):
        return SnapshotFileNode.from_parent(parent, path=file_path)
    return None


def _failure_text(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    from ipabs.errors import DealError, IpabsError

    if isinstance(excinfo.value, SnapshotMoved):
        return str(excinfo.value)
    if isinstance(excinfo.value, DealError):
        return "\n".join(str(i) for i in excinfo.value.issues)
    if isinstance(excinfo.value, IpabsError):
        return f"error: {excinfo.value}"
    return None


class SnapshotFileNode(pytest.File):
    """A snapshot file: its items share one check of the deal."""

    _result: Any = None

    def collect(self) -> Iterator[pytest.Item]:
        """One item for the terms, one per scenario, one for the Monte Carlo."""
        from ipabs.deal.snapshot import load_snapshot_file

        spec, _ = load_snapshot_file(self.path)
        yield SnapshotItem.from_parent(self, name="terms", part="terms")
        for name in spec.scenarios:
            yield SnapshotItem.from_parent(self, name=f"scenario[{name}]", part=f"scenario {name}")
        if spec.monte_carlo is not None:
            yield SnapshotItem.from_parent(self, name="monte_carlo", part="monte carlo")

    def check_result(self) -> Any:
        """The check of this file (run once, for its first item)."""
        if self._result is None:
            from ipabs.regression.core import check_file

            config = self.config
            k = config.getoption("--ipabs-k")
            if k is None:
                k = float(config.getini("ipabs_k"))
            self._result = check_file(self.path, k=k, update=bool(config.getoption("--ipabs-update")))
        return self._result

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """Located problems of a bad snapshot file, without a traceback."""
        return _failure_text(excinfo) or super().repr_failure(excinfo)


class SnapshotItem(pytest.Item):
    """One part of a snapshot: its terms, a scenario or its Monte Carlo."""

    def __init__(self, *, part: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.part = part

    def runtest(self) -> None:
        """Fail when the part's terms changed or its figures moved."""
        result = self.parent.check_result()  # type: ignore[union-attr]
        if result.updated:
            return
        if self.part == "terms":
            if result.terms:
                raise SnapshotMoved(
                    f"{result.file}: terms changed since the snapshot:\n{result.part_text('terms')}\n"
                    "if intended, rewrite the snapshot: ipabs check --update FILE"
                )
            return
        if result.parts.get(self.part):
            raise SnapshotMoved(
                f"{result.file}: {result.part_text(self.part)}\n"
                "if intended, rewrite the snapshot: ipabs check --update FILE"
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """The figures that moved, without a traceback."""
        return _failure_text(excinfo) or super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where the item is, for the report: the file and the part."""
        return self.path, None, self.name
