"""Models: the catalog of verified GGUF files and the llama.cpp engine."""

from tether.models.catalog import (
    CATALOG,
    DEFAULT_MODEL,
    Availability,
    ModelSpec,
    availability,
    cache_dir,
    locate,
    pull,
    resolve,
    verify,
)

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "Availability",
    "ModelSpec",
    "availability",
    "cache_dir",
    "locate",
    "pull",
    "resolve",
    "verify",
]
