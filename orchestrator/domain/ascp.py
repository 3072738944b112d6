"""The ascp error table: what each transfer error code means and whether a new attempt can help.

Source: shared/reference/node-api.md §6 (IBM's ascp management error list, with the retryable
flags IBM's own CLI uses). Classify by code, never by text, except for code 14 (see below).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    """What a person or the orchestrator should do about a transfer error."""

    RETRYABLE = "retryable"  # a new attempt with a fresh token may succeed
    CONFIGURATION = "configuration"  # credentials, paths, permissions, space: a person must act
    PERMANENT = "permanent"  # the transfer as asked cannot succeed
    UNEXPLAINED = "unexplained"  # code 0: the node gave no reason


@dataclass(frozen=True, slots=True)
class AscpCode:
    """One row of the ascp error table."""

    code: int
    mnemonic: str
    retryable: bool
    meaning: str


_TABLE: tuple[tuple[int, str, bool, str], ...] = (
    (0, "UNKNOWN", False, "unknown or no error"),
    (1, "FASP_PROTO", False, "generic FASP protocol error"),
    (2, "ASCP", False, "generic SCP error"),
    (3, "AMBIGUOUS_TARGET", False, "target incorrectly specified"),
    (4, "NO_SUCH_FILE", False, "no such file or directory"),
    (5, "NO_PERMS", False, "insufficient permission to read or write"),
    (6, "NOT_DIR", False, "target is not a directory"),
    (7, "IS_DIR", False, "file is a directory, a regular file was expected"),
    (8, "USAGE", False, "incorrect usage of the scp command"),
    (9, "LIC_DUP", False, "duplicate license"),
    (10, "LIC_RATE_EXCEEDED", False, "rate exceeds the license cap"),
    (11, "INTERNAL_ERROR", False, "internal error"),
    (12, "TRANSFER_ERROR", True, "error establishing the control (SSH) connection"),
    (13, "TRANSFER_TIMEOUT", True, "timeout establishing the control (SSH) connection"),
    (14, "CONNECTION_ERROR", True, "error establishing the data (UDP) connection"),
    (15, "CONNECTION_TIMEOUT", True, "timeout establishing the data (UDP) connection"),
    (16, "CONNECTION_LOST", True, "connection lost"),
    (17, "RCVR_SEND_ERROR", True, "receiver cannot send feedback"),
    (18, "RCVR_RECV_ERROR", True, "receiver cannot receive data packets"),
    (19, "AUTH", False, "authentication failure"),
    (20, "NOTHING", False, "nothing to transfer"),
    (21, "NOT_REGULAR", False, "not a regular file (special file)"),
    (22, "FILE_TABLE_OVR", False, "file table overflow"),
    (23, "TOO_MANY_FILES", True, "too many files open"),
    (24, "FILE_TOO_BIG", False, "file too big for the file system"),
    (25, "NO_SPACE_LEFT", False, "no space left on disk"),
    (26, "READ_ONLY_FS", False, "read-only file system"),
    (27, "SOME_FILE_ERRS", False, "some individual files failed"),
    (28, "USER_CANCEL", False, "cancelled by the user"),
    (29, "LIC_NOLIC", False, "license not found or not accessible"),
    (30, "LIC_EXPIRED", False, "license expired"),
    (31, "SOCK_SETUP", False, "unable to set up a socket"),
    (32, "OUT_OF_MEMORY", True, "out of memory"),
    (33, "THREAD_SPAWN", True, "cannot spawn a thread"),
    (34, "UNAUTHORIZED", False, "refused by the external auth server"),
    (35, "DISK_READ", True, "error reading the source file"),
    (36, "DISK_WRITE", True, "error writing to disk"),
    (37, "AUTHORIZATION", True, "authorization failure"),
    (38, "LIC_ILLEGAL", False, "operation not permitted by the license"),
    (39, "PEER_ABORTED_SESSION", True, "remote peer terminated the session"),
    (40, "DATA_TRANSFER_TIMEOUT", True, "transfer stalled and timed out"),
    (41, "BAD_PATH", False, "path outside the docroot"),
    (42, "ALREADY_EXISTS", False, "file or directory already exists"),
    (43, "STAT_FAILS", False, "cannot stat the file"),
    (44, "PMTU_BRTT_ERROR", True, "UDP session initiation fatal error"),
    (45, "BWMEAS_ERROR", True, "bandwidth measurement fatal error"),
    (46, "VLINK_ERROR", False, "virtual link error"),
    (47, "CONNECTION_ERROR_HTTP", False, "error establishing the HTTP (fallback) connection"),
    (48, "FILE_ENCRYPTION_ERROR", False, "file encryption or decryption error"),
    (49, "FILE_DECRYPTION_PASS", False, "bad decryption passphrase"),
    (50, "BAD_CONFIGURATION", False, "aspera.conf is invalid"),
    (51, "INSECURE_CONNECTION", False, "remote host key check failed"),
    (52, "START_VALIDATION_FAILED", False, "file start validation failed"),
    (53, "STOP_VALIDATION_FAILED", False, "file stop validation failed"),
    (54, "THRESHOLD_VALIDATION_FAILED", False, "file threshold validation failed"),
    (55, "FILEPATH_TOO_LONG", False, "path too long for the file system"),
    (56, "ILLEGAL_CHARS_IN_PATH", False, "illegal characters in a Windows path"),
    (57, "CHUNK_MUST_MATCH_ALIGNMENT", False, "chunk size or start not aligned with storage"),
    (58, "VALIDATION_SESSION_ABORT", False, "session aborted by a validation error"),
    (59, "REMOTE_STORAGE_ERROR", False, "remote storage error"),
    (60, "LUA_SCRIPT_ABORTED_SESSION", False, "aborted by a Lua script"),
    (61, "SSEAR_RETRYABLE", True, "retryable encryption-at-rest error"),
    (62, "SSEAR_FATAL", False, "fatal encryption-at-rest error"),
    (63, "LINK_LOOP", False, "symbolic link loop"),
    (64, "CANNOT_RENAME_PARTIAL_FILES", False, "cannot rename a partial file"),
    (65, "CIPHER_NON_COMPAT_FIPS", False, "cipher not allowed in FIPS mode"),
    (66, "PEER_REQUIRES_FIPS", False, "peer rejects the cipher because FIPS is on at the peer"),
)

ASCP_CODES: dict[int, AscpCode] = {row[0]: AscpCode(*row) for row in _TABLE}

# Codes that mean a person must change something (credentials, paths, rights, space);
# node-api.md §6 "suggested orchestrator policy".
_CONFIGURATION_CODES = frozenset({4, 5, 19, 25, 26, 34, 41})

# Code 14 is retryable except with this text, which IBM's CLI treats as final (node-api.md §6).
_TARGET_ADDRESS_NOT_AVAILABLE = "target address not available"


def describe(code: int) -> AscpCode:
    """The table row for a code; unknown codes are described as non-retryable."""
    return ASCP_CODES.get(code, AscpCode(code, f"CODE_{code}", False, "unknown ascp error code"))


def is_retryable(code: int, text: str = "") -> bool:
    """Whether a new attempt may succeed after a transfer failed with this code and text."""
    if code == 14 and _TARGET_ADDRESS_NOT_AVAILABLE in text.lower():
        return False
    return describe(code).retryable


def classify(code: int, text: str = "") -> ErrorClass:
    """Sort a transfer error into what should happen next."""
    if code == 0:
        return ErrorClass.UNEXPLAINED
    if is_retryable(code, text):
        return ErrorClass.RETRYABLE
    if code in _CONFIGURATION_CODES:
        return ErrorClass.CONFIGURATION
    return ErrorClass.PERMANENT


# What a person should do about each class (docs/operations.md, "Transfer errors").
_ADVICE = {
    ErrorClass.RETRYABLE: (
        "A new attempt starts after a back-off while attempts are left. If it keeps failing, "
        "check the network between the two nodes (FASP, TCP/UDP 33001 by default) and their "
        "disks."
    ),
    ErrorClass.CONFIGURATION: (
        "A person must change something: fix the path, the rights, the disk space or the "
        "transfer user's token set-up (token_encryption_key on the destination), then retry."
    ),
    ErrorClass.PERMANENT: (
        "The transfer cannot succeed as asked (wrong kind of path, license, encryption "
        "settings): read the node's text, change the job or the node, then submit or retry."
    ),
    ErrorClass.UNEXPLAINED: (
        "The node gave no reason. Look at the destination (what arrived?) and at the source "
        "node's transfer, then retry (files already there are skipped or resumed) or cancel."
    ),
}


def advice(error_class: ErrorClass) -> str:
    """What to do about an error of this class, in a sentence or two."""
    return _ADVICE[error_class]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A transfer error as a person reads it: the code's row, its class and what to do."""

    code: int
    mnemonic: str
    meaning: str
    error_class: ErrorClass
    advice: str


def explain(code: int, text: str = "") -> Explanation:
    """The code's name and meaning, its class, and the advice for that class."""
    row = describe(code)
    kind = classify(code, text)
    return Explanation(code, row.mnemonic, row.meaning, kind, advice(kind))
