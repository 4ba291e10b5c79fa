"""``/v1/device/state``: how an app behind the gateway tells the router what the device is doing.

The router sends requests away while the device is busy or in low-power mode and keeps them
here while it is offline (``tether.routing.state``). A library caller reports that with
``router.state.report(...)``; an app that talks to the gateway over HTTP posts the same fields
here. A field left out keeps its value, and a flag must be a JSON boolean: a ``"false"`` string
must never read as true.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tether.gateway.core import gateway, read_json
from tether.gateway.features import parse
from tether.routing.state import Snapshot


class DeviceStateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    offline: bool | None = Field(default=None, description="no network: nothing can leave the device")
    low_power: bool | None = Field(default=None, description="low-power mode: send what can go to a cloud tier")
    busy: bool | None = Field(default=None, description="the device is busy: send what can go to a cloud tier")
    memory_available_mb: float | None = Field(
        default=None, description="free memory the app may use, in MiB; -1 goes back to the OS's figure")


def _state(snapshot: Snapshot) -> dict[str, object]:
    return {"offline": snapshot.offline, "low_power": snapshot.low_power, "busy": snapshot.busy,
            "memory_available_mb": snapshot.memory_available_mb,
            "memory_reported": snapshot.memory_available_mb is not None}


async def get_device_state(request: Request) -> JSONResponse:
    """What the router currently believes about the device (``memory_available_mb`` null: it asks the OS)."""
    return JSONResponse(_state(gateway(request).router.state.snapshot()))


async def report_device_state(request: Request) -> JSONResponse:
    """Report offline, low-power, busy or free memory; the next routing decision reads it."""
    gw = gateway(request)
    body = parse(DeviceStateBody, await read_json(request, gw.max_body))
    snapshot = gw.router.state.report(**body.model_dump(exclude_none=True))  # InputError (400) on a bad memory value
    return JSONResponse(_state(snapshot))
