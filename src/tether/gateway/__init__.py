"""A local OpenAI-compatible HTTP gateway (``tether serve``): change one base URL, get on-device-first routing."""

from tether.gateway.app import create_app

__all__ = ["create_app"]
