"""ipabs: cash-flow and credit-risk simulation of intellectual-property securitizations.

>>> import ipabs
>>> deal = ipabs.load_deal("scenarios/caohejing_ip_pledge.yaml")  # doctest: +SKIP
>>> ipabs.run(deal).summary  # doctest: +SKIP
>>> ipabs.simulate(deal, paths=100_000, seed=1).tranches  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ipabs._version import __version__
from ipabs.deal.load import LoadedDeal, load_deal, parse_deal
from ipabs.errors import DealError, IpabsError

# The engine pulls in numba; load it on first use so `ipabs validate` stays quick.
_LAZY = {
    "run": "ipabs.api",
    "compile_deal": "ipabs.engine.compile",
    "RunResult": "ipabs.results",
    "simulate": "ipabs.montecarlo",
    "SimulationResult": "ipabs.montecarlo",
    "load_risk": "ipabs.deal.load",
    "price": "ipabs.analytics.pricing",
    "price_table": "ipabs.analytics.pricing",
    "load_curve": "ipabs.deal.curve",
    "snapshot": "ipabs.regression",
    "check": "ipabs.regression",
    "diff": "ipabs.regression",
    # ---- surveillance: the deal on a report date (docs/surveillance.md)
    "load_state": "ipabs.deal.state",
    "state_at": "ipabs.analytics.state",
    "write_state": "ipabs.analytics.state",
    "reproject": "ipabs.analytics.reproject",
    "monitor": "ipabs.analytics.monitor",  # early warning (docs/monitor.md)
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ipabs' has no attribute {name!r}")


__all__ = [
    "DealError",
    "IpabsError",
    "LoadedDeal",
    "RunResult",
    "SimulationResult",
    "__version__",
    "check",
    "compile_deal",
    "diff",
    "load_curve",
    "load_deal",
    "load_risk",
    "load_state",
    "monitor",
    "parse_deal",
    "price",
    "price_table",
    "reproject",
    "run",
    "simulate",
    "snapshot",
    "state_at",
    "write_state",
]
