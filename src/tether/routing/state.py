"""What the app tells the router about the device right now.

An app reports state changes as they happen (``report(offline=True)``); the
router reads a consistent snapshot per decision. Free memory is the one value
the router can also read itself (from the OS, through psutil) when the app does
not report it: a phone app knows better what the system will let it keep.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Snapshot:
    offline: bool = False
    low_power: bool = False
    busy: bool = False
    memory_available_mb: float | None = None  # None: ask the OS (``available_memory_mb``)

    def as_dict(self) -> dict[str, bool | float]:
        d = asdict(self)
        if d["memory_available_mb"] is None:
            del d["memory_available_mb"]
        return d

    def available_memory_mb(self) -> float:
        if self.memory_available_mb is not None:
            return self.memory_available_mb
        import psutil

        return psutil.virtual_memory().available / 2**20


class DeviceState:
    """Thread-safe; one per app, shared by its routers."""

    def __init__(self, *, offline: bool = False, low_power: bool = False, busy: bool = False,
                 memory_available_mb: float | None = None):
        self._lock = threading.Lock()
        _flags(offline=offline, low_power=low_power, busy=busy)
        self._snapshot = Snapshot(bool(offline), bool(low_power), bool(busy), _memory(memory_available_mb))

    def report(self, *, offline: bool | None = None, low_power: bool | None = None, busy: bool | None = None,
               memory_available_mb: float | None = None) -> Snapshot:
        """Change what was reported; an argument left out keeps its value. Free memory, once
        reported, stays until reported again (``memory_available_mb=-1`` goes back to asking the OS)."""
        _flags(offline=offline, low_power=low_power, busy=busy)
        with self._lock:
            s = self._snapshot
            memory = s.memory_available_mb if memory_available_mb is None else _memory(memory_available_mb)
            self._snapshot = Snapshot(s.offline if offline is None else offline,
                                      s.low_power if low_power is None else low_power,
                                      s.busy if busy is None else busy, memory)
            return self._snapshot

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot


def _flags(**flags: object) -> None:
    """``InputError`` unless each flag is True, False or None: a "false" from a settings file or a
    header must not read as true (a device "in low-power mode" sends its requests away)."""
    for name, value in flags.items():
        if value is not None and not isinstance(value, bool):
            from tether.errors import InputError

            raise InputError(f"{name} is True or False, not {value!r:.40}")


def _memory(mb: float | None) -> float | None:
    if mb is None or mb == -1:
        return None
    if not isinstance(mb, (int, float)) or isinstance(mb, bool) or not math.isfinite(mb) or mb < 0:
        from tether.errors import InputError

        raise InputError(f"memory_available_mb must be a number of MiB ≥ 0 (or -1 for the OS's figure), got {mb!r}")
    return float(mb)
