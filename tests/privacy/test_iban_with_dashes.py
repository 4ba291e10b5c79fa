"""A lower-case IBAN written with dashes ("de89-3704-0044-0532-0130-00") left the device as written
before 2026-12-04: the lower-case rule read only spaces between its groups."""

from __future__ import annotations


def test_a_lower_case_iban_with_dashes_is_found(guard):
    text = "my old iban de89-3704-0044-0532-0130-00 is closed"
    assert [(s.entity_type, s.text) for s in guard.detect(text)] == [("IBAN_CODE", "de89-3704-0044-0532-0130-00")]


def test_a_dashed_code_whose_check_digits_fail_is_no_iban(guard):
    assert guard.detect("ref ab12-cdef-ghij-klmn ok") == []
