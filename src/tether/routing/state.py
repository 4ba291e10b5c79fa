"""What the app tells the router about the device right now.

An app reports state changes as they happen (``report(offline=True)``); the
router reads a consistent snapshot per decision.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Snapshot:
    offline: bool = False
    low_power: bool = False
    busy: bool = False

    def as_dict(self) -> dict[str, bool]:
        return asdict(self)


class DeviceState:
    """Thread-safe; one per app, shared by its routers."""

    def __init__(self, *, offline: bool = False, low_power: bool = False, busy: bool = False):
        self._lock = threading.Lock()
        self._snapshot = Snapshot(offline, low_power, busy)

    def report(self, *, offline: bool | None = None, low_power: bool | None = None, busy: bool | None = None) -> Snapshot:
        with self._lock:
            s = self._snapshot
            self._snapshot = Snapshot(s.offline if offline is None else offline,
                                      s.low_power if low_power is None else low_power,
                                      s.busy if busy is None else busy)
            return self._snapshot

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot
