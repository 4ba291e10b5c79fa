"""Labelled PII sentences for measuring the guard (tests and ``benchmarks/privacy_eval.py``).

Needs ``presidio-evaluator`` (the ``test`` extra); imported lazily so the guard
itself never depends on it.
"""

from __future__ import annotations

import random
from typing import Any

# Templates that carry contact, card, bank, IP, SSN or birth-date data: the kind of
# message a user would send.
PII_REQUEST_KEYS = ("{{email", "{{iban", "{{ip_address", "{{ssn", "{{phone_number", "{{credit_card", "{{date_of_birth")

# The generator's labels → Tether's entity types (it calls a place GPE).
GOLD_TO_OURS = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE", "IP_ADDRESS": "IP_ADDRESS", "US_SSN": "US_SSN",
    "STREET_ADDRESS": "STREET_ADDRESS", "GPE": "LOCATION", "DATE_OF_BIRTH": "DATE_OF_BIRTH",
}


def labelled_sentences(n: int, seed: int, *, pii_request: bool = False, lower_case_ratio: float = 0.0) -> list[Any]:
    """``n`` reproducible sentences with gold spans, generated offline.

    The library's templates write line breaks as a literal backslash-n; they
    become real newlines. The hospital provider is left out because it queries
    WikiData. Birth dates get their own label (the library files them under
    DATE_TIME). The library draws its people's middle initials from the global ``random``
    before it applies ``random_seed``, so that is seeded here too; without it the names
    differed from run to run. (Timestamps the library draws up to "now" still
    differ in their last seconds.)
    """
    from presidio_evaluator.data_generator import PresidioSentenceFaker
    from presidio_evaluator.data_generator.faker_extensions import HospitalProvider
    from presidio_evaluator.data_generator.presidio_sentence_faker import (
        presidio_additional_entity_providers,
        presidio_templates_file_path,
    )

    templates = [t.strip().replace("\\n", "\n").replace("\\,", ",")
                 for t in presidio_templates_file_path.read_text().splitlines() if t.strip()]
    if pii_request:
        templates = [t for t in templates if any(k in t for k in PII_REQUEST_KEYS)]
    providers = [p for p in presidio_additional_entity_providers if p is not HospitalProvider]
    mapping = dict(PresidioSentenceFaker.ENTITY_TYPE_MAPPING, date_of_birth="DATE_OF_BIRTH", birthday="DATE_OF_BIRTH")
    state = random.getstate()
    try:
        random.seed(seed)
        faker = PresidioSentenceFaker("en_US", lower_case_ratio=lower_case_ratio, sentence_templates=templates,
                                      entity_providers=providers, entity_type_mapping=mapping, random_seed=seed)
        return faker.generate_new_fake_sentences(n)
    finally:
        random.setstate(state)
