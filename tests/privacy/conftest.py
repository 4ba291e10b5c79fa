"""Privacy tests run the real presidio analyzer and the packaged spaCy model (no mocks)."""

from __future__ import annotations

import pytest

from tether.privacy import PrivacyGuard


@pytest.fixture(scope="session")
def guard() -> PrivacyGuard:
    return PrivacyGuard()


@pytest.fixture(scope="session")
def make_sentences():
    return _generated_sentences


def _generated_sentences(n: int, seed: int, *, pii_request_templates: bool = False):
    from tether.privacy.evaluation import labelled_sentences

    return labelled_sentences(n, seed, pii_request=pii_request_templates)
