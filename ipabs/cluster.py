"""Monte Carlo paths on a Dask cluster (docs/cluster.md).

Paths are split into blocks; each block runs the same compiled kernel on a worker and the
blocks come back into one result. Path *i* is a pure function of (seed, i), so the merged
result is the one a single process gives, bit for bit, however the blocks are spread. A block
lost with a worker is run again by the scheduler; the results are written by block, so none is
lost or counted twice.

``dask.distributed`` is an optional dependency (``pip install "ipabs[cluster]"``).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, TypeVar

from ipabs.errors import IpabsError

_CLIENT: ContextVar[Any] = ContextVar("ipabs_cluster_client", default=None)

_LOCAL = re.compile(r"^local:(\d+)$")

MIN_BLOCK = 5_000
"""Fewest paths per block: a block's scheduling costs a few milliseconds."""


def active_client() -> Any:
    """The Dask client Monte Carlo runs use now (None: run in this process)."""
    return _CLIENT.get()


@contextmanager
def using(client: Any) -> Iterator[Any]:
    """Run every Monte Carlo inside the ``with`` block on ``client`` (None: in process)."""
    token = _CLIENT.set(client)
    try:
        yield client
    finally:
        _CLIENT.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def accepts_client(fn: F) -> F:
    """Give ``fn`` a keyword ``client=`` (a Dask client): its Monte Carlo runs go there."""

    @functools.wraps(fn)
    def wrapper(*args: Any, client: Any = None, **kwargs: Any) -> Any:
        with using(client) if client is not None else nullcontext():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


CLUSTER_COMMANDS = ("mc", "sweep", "size", "rate", "report")
"""Commands that take ``--cluster`` and ``--scheduler``."""


def add_cluster_options(parser: Any) -> None:
    """``--cluster local:N`` and ``--scheduler ADDRESS`` on a command's parser."""
    group = parser.add_argument_group("cluster (docs/cluster.md)")
    group.add_argument(
        "--cluster",
        metavar="local:N",
        help="run the Monte Carlo paths on a local Dask cluster of N worker processes",
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the Monte Carlo paths on the Dask cluster of this scheduler (tcp://host:8786)",
    )


def local_workers(text: str) -> int:
    """The worker count of a ``local:N`` cluster specification.

    Raises
    ------
    IpabsError
        If the text is not ``local:N`` with N from 1 to 256.
    """
    m = _LOCAL.match(text.strip())
    if not m or not 1 <= int(m.group(1)) <= 256:
        raise IpabsError(
            f"--cluster {text!r}: write local:N, a local cluster of N worker processes (N from 1 to 256)"
        )
    return int(m.group(1))


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - depends on the installation
        raise IpabsError(
            'running on a cluster needs dask.distributed: pip install "ipabs[cluster]"'
        ) from None
    return distributed


@contextmanager
def connect(cluster: str | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client for a local cluster or an existing scheduler, made active for the block.

    Parameters
    ----------
    cluster : str, optional
        ``local:N``: start N worker processes on this machine (one thread each), and stop them
        afterwards.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``), as started by
        ``dask scheduler``; its workers must have ipabs installed.

    Yields
    ------
    distributed.Client or None
        None when neither is given: runs stay in this process.

    Raises
    ------
    IpabsError
        If both are given, the specification is wrong or the scheduler cannot be reached.
    """
    if cluster is not None and scheduler is not None:
        raise IpabsError("give either --cluster or --scheduler, not both")
    if cluster is None and scheduler is None:
        with using(None):
            yield None
        return
    distributed = _distributed()
    if cluster is not None:
        n = local_workers(cluster)
        with (
            distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never a clash with another cluster
                silence_logs=logging.ERROR,
            ) as local,
            distributed.Client(local) as client,
            using(client),
        ):
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout="5s")
    except (OSError, TimeoutError) as exc:
        raise IpabsError(
            f"cannot reach the Dask scheduler at {scheduler!r} ({exc}); start one with "
            "`dask scheduler` and give the address it prints"
        ) from None
    with client, using(client):
        yield client


def worker_count(client: Any) -> int:
    """Workers the client's scheduler has now (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))


def block_bounds(paths: int, workers: int, batch_size: int | None = None) -> list[tuple[int, int]]:
    """Blocks of paths: ``batch_size`` each, or eight per worker of at least :data:`MIN_BLOCK`
    (enough for balance and progress, few enough that scheduling does not show)."""
    size = batch_size or max(MIN_BLOCK, math.ceil(paths / (8 * workers)))
    return [(lo, min(lo + size, paths)) for lo in range(0, paths, size)]
