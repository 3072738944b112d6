"""The ascp management-port error codes: number, mnemonic, retryable flag and text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AscpError:
    """One row of the ascp error table."""

    code: int
    mnemonic: str
    retryable: bool
    text: str


_ROWS: tuple[tuple[int, str, bool, str], ...] = (
    (0, "UNKNOWN", False, "unknown / no error"),
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

ERRORS: dict[int, AscpError] = {row[0]: AscpError(*row) for row in _ROWS}

# Codes used by name in the simulator.
FASP_PROTO = 1
NO_SUCH_FILE = 4
NOT_DIR = 6
IS_DIR = 7
INTERNAL_ERROR = 11
CONNECTION_ERROR = 14
CONNECTION_TIMEOUT = 15
CONNECTION_LOST = 16
AUTH = 19
USER_CANCEL = 28
NOT_REGULAR = 21
DISK_READ = 35
DISK_WRITE = 36
BAD_PATH = 41
INSECURE_CONNECTION = 51
CANNOT_RENAME_PARTIAL_FILES = 64
TARGET_ADDRESS_NOT_AVAILABLE = "Target address not available"


def lookup(code: int) -> AscpError:
    """Return the table row for a code, or a generic row for a code the table lacks."""
    return ERRORS.get(code, AscpError(code, "UNLISTED", False, f"ascp error {code}"))


def describe(code: int) -> str:
    """Return the table text for a code."""
    return lookup(code).text


def is_retryable(code: int, message: str = "") -> bool:
    """Tell whether the node's transfer manager retries a session that ended with this code."""
    if code == CONNECTION_ERROR and TARGET_ADDRESS_NOT_AVAILABLE in message:
        return False
    return lookup(code).retryable


class SessionFailure(Exception):
    """A session ends with an ascp error code (desc defaults to the table text)."""

    def __init__(self, code: int, desc: str | None = None) -> None:
        self.code = code
        self.desc = desc if desc is not None else describe(code)
        super().__init__(f"{code}: {self.desc}")
