"""The checksum algorithms a job takes, and what a set of checksum reports says."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.domain.checksums import Disagreement, checksum_disagreements, unchecked_files
from orchestrator.domain.jobs import TransferOptions
from orchestrator.domain.transfers import TransferFile


@pytest.mark.parametrize(
    ("given", "sent"),
    [("sha256", "sha-256"), ("SHA-512", "sha-512"), ("md5", "md5"), ("sha-1", "sha1")],
)
def test_algorithms_are_sent_in_the_node_api_spelling(given: str, sent: str) -> None:
    fields = TransferOptions(file_checksum=given).to_spec_fields(source_root="/")  # type: ignore[arg-type]
    assert fields["file_checksum"] == sent


def test_an_unknown_algorithm_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="file_checksum"):
        TransferOptions(file_checksum="crc32")  # type: ignore[arg-type]


def test_no_checksum_asked_sends_no_field() -> None:
    assert "file_checksum" not in TransferOptions().to_spec_fields(source_root="/")
    assert not TransferOptions().reads_checksums
    assert TransferOptions(require_checksums=True).reads_checksums


def test_destinations_that_agree_have_no_disagreement() -> None:
    same = {"/a": "AB12", "/b": "cd34"}
    assert checksum_disagreements({"x": same, "y": {"/a": "ab12", "/b": "CD34"}}) == []
    assert checksum_disagreements({}) == []


def test_differing_missing_and_absent_files_are_named_in_path_order() -> None:
    found = checksum_disagreements(
        {
            "paris": {"/z": "11", "/a": "01", "/m": "02"},
            "london": {"/z": "11", "/a": "ff", "/m": None},
            "tokyo": {"/z": "11", "/a": "01", "/m": "02", "/extra": "99"},
        }
    )
    assert [d.path for d in found] == ["/a", "/extra", "/m"]
    assert found[0] == Disagreement("/a", {"london": "ff", "paris": "01", "tokyo": "01"})
    assert str(found[0]) == "/a: checksums differ across london, paris, tokyo"
    assert str(found[1]) == "/extra: no checksum from london, paris"
    assert str(found[2]) == "/m: no checksum from london"


def test_unchecked_files_are_the_moved_ones_without_a_checksum() -> None:
    files = [
        TransferFile(path="/ok", status="completed", size=3, bytes_written=3,
                     checksum_type="sha-256", checksum="abc"),
        TransferFile(path="/none", status="completed", size=3, bytes_written=3,
                     checksum_type="none"),
        TransferFile(path="/left-alone", status="completed", size=3, bytes_written=0),
        TransferFile(path="/failed", status="failed", size=3, bytes_written=1),
    ]  # fmt: skip
    assert unchecked_files(files) == ["/none"]
