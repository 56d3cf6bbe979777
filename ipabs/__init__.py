"""ipabs: cash-flow and credit-risk simulation of intellectual-property securitizations."""

from ipabs.deal.load import LoadedDeal, load_deal, parse_deal
from ipabs.errors import DealError, IpabsError

__version__ = "0.1.0"

__all__ = ["DealError", "IpabsError", "LoadedDeal", "__version__", "load_deal", "parse_deal"]
