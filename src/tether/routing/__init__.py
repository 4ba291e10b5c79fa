"""Where each request runs: device, private cloud, or a third party with consent.

    from tether.routing import Router, RouteRequest
    router = Router.from_config()             # $TETHER_ROUTER_CONFIG or defaults
    out = router.respond(RouteRequest("Summarize my day", kind="chat"))
    print(out.tier, out.decision.explain())
"""

from tether.routing.config import RouterConfig
from tether.routing.ledger import Ledger, LedgerEntry, LedgerStats, Prices
from tether.routing.router import Decision, RoutedResponse, RouteRequest, Router
from tether.routing.state import DeviceState

__all__ = ["Decision", "DeviceState", "Ledger", "LedgerEntry", "LedgerStats", "Prices", "RouteRequest",
           "RoutedResponse", "Router", "RouterConfig"]
