"""The node directory, rebuilt on the device from every entry of the transparency log.

The log serves its own directory (``/v1/log/nodes``, ``/v1/log/releases``), and a device reads
the log through the relay's mirror. A list can leave a node out without any proof failing, so a
relay that kept one node in the list would narrow every device behind it to that node: the
opposite of non-targetability. Entries cannot be left out that way: the device fetches all of
them, hashes them into pymerkle's tree and compares the root with the tree head the log signed.
A missing, added or changed entry gives another root. From the proven entries it derives the
directory by the rule the log itself keeps its directory by (``DirectoryIndex``).

Only the 32-byte leaf hashes, the releases and each node's latest attestation are kept, so a
long-running device does not hold the whole log; a later tree head costs only its new entries.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pymerkle.core import BaseMerkleTree

from tether.cloud.attestation import canonical_json
from tether.errors import TransparencyLogError

HASH_ALGORITHM = "sha256"  # the log's tree and the device's alike
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()  # an empty tree's root, as the log signs it


class _LeafHashes(BaseMerkleTree):
    """pymerkle's RFC 6962 tree over leaf hashes alone (its in-memory tree keeps every entry too)."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        super().__init__(HASH_ALGORITHM)

    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        self._leaves.append(digest)
        return len(self._leaves)

    def _get_leaf(self, index: int) -> bytes:
        return self._leaves[index - 1]

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        return self._leaves[offset:offset + width]

    def _get_size(self) -> int:
        return len(self._leaves)


class DirectoryIndex:
    """What a log's directory is made of: the releases and each node's latest attestation, read
    entry by entry. The log keeps one as it appends (``TransparencyLog``); a device rebuilds one
    from the entries it proved (``ProvenDirectory``), so both list the same nodes by one rule."""

    def __init__(self) -> None:
        self._releases: dict[str, tuple[int, dict[str, Any]]] = {}  # measurement → (first index, entry)
        self._nodes: dict[str, tuple[float, int, dict[str, Any]]] = {}  # node id → (issued_at, index, entry)

    def add(self, index: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        if kind == "release" and isinstance(entry.get("measurement"), str):
            self._releases.setdefault(entry["measurement"], (index, entry))
        elif kind == "node" and isinstance(entry.get("attestation"), dict):
            att = entry["attestation"]
            node, issued = str(att.get("node_id")), att.get("issued_at")
            issued = float(issued) if isinstance(issued, (int, float)) else float("-inf")
            if node not in self._nodes or issued >= self._nodes[node][0]:
                self._nodes[node] = (issued, index, entry)

    def release_index(self, measurement: str) -> int | None:
        found = self._releases.get(measurement)
        return None if found is None else found[0]

    def latest_issued(self, node_id: str) -> float | None:
        """When the node's latest attestation was issued, if it has one."""
        found = self._nodes.get(node_id)
        return None if found is None else found[0]

    def releases(self) -> dict[str, int]:
        return {measurement: index for measurement, (index, _) in self._releases.items()}

    def nodes(self, *, now: float, max_age: float) -> list[dict[str, Any]]:
        """Each node's latest attestation, if it is young enough and its measurement released,
        oldest entry first."""
        cutoff = now - max_age
        live = sorted((index, entry) for issued, index, entry in self._nodes.values()
                      if issued >= cutoff and entry["attestation"].get("measurement") in self._releases)
        return [{"index": index, "attestation": entry["attestation"]} for index, entry in live]

    def entries(self) -> dict[int, dict[str, Any]]:
        """The kept entries by index: every release and each node's latest attestation."""
        kept = {index: entry for index, entry in self._releases.values()}
        kept.update({index: entry for _, index, entry in self._nodes.values()})
        return kept


class ProvenDirectory(DirectoryIndex):
    """A ``DirectoryIndex`` of entries ``1..size``, in order, none skipped, hashed as they come."""

    def __init__(self) -> None:
        super().__init__()
        self._tree = _LeafHashes()

    @property
    def size(self) -> int:
        return self._tree.get_size()

    def add(self, index: int, entry: Any) -> None:
        """Entry ``index``, which must be the next one."""
        if index != self.size + 1:
            raise TransparencyLogError(f"the log sent entry {index!r} where entry {self.size + 1} was due")
        if not isinstance(entry, dict):
            raise TransparencyLogError(f"log entry {index} is not a JSON object")
        try:
            data = canonical_json(entry)
        except (TypeError, ValueError, RecursionError) as exc:
            raise TransparencyLogError(f"malformed log entry {index}: {exc}") from None
        self._tree.append_entry(data)
        super().add(index, entry)

    def root(self) -> str:
        return self._tree.get_root(self.size).hex() if self.size else EMPTY_ROOT
