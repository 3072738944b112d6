"""The ascp error table and its classification (node-api.md §6)."""

from __future__ import annotations

import pytest

from orchestrator.domain.ascp import ASCP_CODES, ErrorClass, classify, describe, is_retryable
from orchestrator.domain.transfers import TransferFailure

RETRYABLE = {12, 13, 14, 15, 16, 17, 18, 23, 32, 33, 35, 36, 37, 39, 40, 44, 45, 61}


def test_table_covers_every_code_from_0_to_66() -> None:
    assert sorted(ASCP_CODES) == list(range(67))


def test_retryable_flags_match_the_reference() -> None:
    assert {c for c, row in ASCP_CODES.items() if row.retryable} == RETRYABLE


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (16, "connection lost", ErrorClass.RETRYABLE),
        (14, "Target address not available", ErrorClass.PERMANENT),
        (14, "could not connect", ErrorClass.RETRYABLE),
        (19, "authentication failure", ErrorClass.CONFIGURATION),
        (41, "", ErrorClass.CONFIGURATION),
        (25, "", ErrorClass.CONFIGURATION),
        (28, "", ErrorClass.PERMANENT),
        (0, "", ErrorClass.UNEXPLAINED),
        (999, "", ErrorClass.PERMANENT),
    ],
)
def test_classify(code: int, text: str, expected: ErrorClass) -> None:
    assert classify(code, text) is expected
    assert is_retryable(code, text) == (expected is ErrorClass.RETRYABLE)


def test_unknown_code_is_described_not_raised() -> None:
    assert describe(999).mnemonic == "CODE_999"


def test_failure_reads_like_an_operator_message() -> None:
    failure = TransferFailure(code=16, text="")
    assert str(failure) == "ascp error 16 (CONNECTION_LOST): connection lost"
    assert failure.retryable
