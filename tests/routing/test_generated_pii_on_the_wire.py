"""200 generated personal-data sentences sent to a real third party through the router, and what
reached it searched byte by byte.

``tests/privacy/test_guard.py`` checks the guard's payloads; this checks the wire: every request
body and header the stand-in OpenAI-compatible provider (a real server on loopback) received.
The provider echoes what it got, so each answer also shows the placeholders restored on the
device, back into the user's own values.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from tether.privacy.evaluation import GOLD_TO_OURS as LABELS, labelled_sentences
from tether.routing.config import RouterConfig, ThirdPartyConfig
from tether.routing.router import RouteRequest, Router
from tether.routing.state import DeviceState



def test_200_generated_sentences_reach_the_third_party_only_pseudonymized(stub_device, third, provider):
    config = RouterConfig(cascade=[], consent="always",
                          third_party=ThirdPartyConfig(base_url="http://provider.invalid/v1", model="m"))
    router = Router(config, device=stub_device, third_party=third, state=DeviceState(), ledger=None)
    samples = labelled_sentences(200, 2026, pii_request=True)
    assert len(samples) == 200
    totals: Counter[str] = Counter()
    leaked: dict[str, list[str]] = {}
    placeholders = 0
    for sample in samples:
        provider.reset()
        text = sample.full_text
        out = router.respond(RouteRequest(text, tier="third_party", consent=True, max_tokens=4096))
        assert out.tier == "third_party" and not out.degraded
        received = provider.captured()
        assert len(received) == 1
        wire = json.dumps(received, ensure_ascii=False)  # bodies and headers, as the provider decoded them
        assert " ".join(out.text.split()) == " ".join(("echo: " + text).split())  # restored on the device
        placeholders += len(re.findall(r"<[A-Z_]+_\d+>", wire))
        for span in sample.spans:
            etype = LABELS.get(span.entity_type)
            if etype is None:
                continue
            value = text[span.start_position:span.end_position]
            totals[etype] += 1
            if value in wire:
                leaked.setdefault(etype, []).append(value)
            if etype == "PERSON":
                for word in re.findall(r"[^\W\d_]{3,}", value):
                    if word[0].isupper() and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", wire):
                        leaked.setdefault("PERSON (a word of the name)", []).append(word)
    assert set(totals) == set(LABELS.values()), totals  # every type went out
    assert sum(totals.values()) >= 300 and placeholders >= 300  # the values went out, as placeholders
    assert not leaked, leaked
    assert stub_device.calls == 0  # the device model wrote nothing: only the third party answered
