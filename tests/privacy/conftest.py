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
    """Labelled sentences from presidio-evaluator, offline and reproducible.

    The library's templates write line breaks as a literal backslash-n; they are
    turned into real newlines. The hospital provider is left out because it
    queries WikiData. Same setup as ``benchmarks/privacy_eval.py``'s leak check.
    """
    from presidio_evaluator.data_generator import PresidioSentenceFaker
    from presidio_evaluator.data_generator.faker_extensions import HospitalProvider
    from presidio_evaluator.data_generator.presidio_sentence_faker import (
        presidio_additional_entity_providers,
        presidio_templates_file_path,
    )

    templates = [line.strip().replace("\\n", "\n").replace("\\,", ",")
                 for line in presidio_templates_file_path.read_text().splitlines() if line.strip()]
    if pii_request_templates:
        keys = ("{{email", "{{iban", "{{ip_address", "{{ssn", "{{phone_number", "{{credit_card", "{{date_of_birth")
        templates = [t for t in templates if any(k in t for k in keys)]
    providers = [p for p in presidio_additional_entity_providers if p is not HospitalProvider]
    # Birth dates get their own label (the library files them under DATE_TIME).
    mapping = dict(PresidioSentenceFaker.ENTITY_TYPE_MAPPING, date_of_birth="DATE_OF_BIRTH", birthday="DATE_OF_BIRTH")
    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.0, sentence_templates=templates,
                                  entity_providers=providers, entity_type_mapping=mapping, random_seed=seed)
    return faker.generate_new_fake_sentences(n)
