"""Remediation per error class: what the orchestrator does about each kind of failure.

One table, printed in docs/operations.md ("Remediation per error class"; a test keeps the two
equal). The ascp codes come from node-api.md §6; the Node API's own refusals (HTTP 401/403 from
upload_setup or POST /ops/transfers) from §1.3. A code no row names keeps the ascp table's
classification (domain/ascp.py): back-off when retryable, a stop otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.domain.ascp import describe, is_retryable


class Remedy(StrEnum):
    """The action taken for a failure."""

    RESUBMIT_NOW = "resubmit_now"  # a new upload_setup and POST at once, no back-off
    COMPARE_EXISTING = "compare_existing"  # compare the destination's files with the source's
    HOLD_DESTINATION = "hold_destination"  # hold every queued job to the destination
    DISABLE_NODE = "disable_node"  # stop using the node until a person enables it
    FAIL_NOW = "fail_now"  # fail at once, naming the path
    BACK_OFF = "back_off"  # a new attempt after an exponential back-off


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the remediation table."""

    failure: str  # the error class, as the docs name it
    trigger: str  # the codes or HTTP statuses that select the row
    remedy: Remedy
    action: str  # what happens, in a sentence


# Token codes: hstssim (and, per node-api.md §8.2, a real node) refuses a session whose token
# is expired, foreign or for other paths with 19; 34 and 37 are the external-auth variants.
TOKEN_CODES = frozenset({19, 34, 37})
EXISTS_CODES = frozenset({42})
# The reference has no separate quota code: a quota that refuses a write ends the session the
# way a full disk does (25), which is the tolerant reading.
SPACE_CODES = frozenset({25})
MISSING_CODES = frozenset({4})
NODE_REFUSED_STATUSES = frozenset({401, 403})

TABLE: tuple[Row, ...] = (
    Row(
        "token expired or rejected",
        "ascp 19, 34, 37",
        Remedy.RESUBMIT_NOW,
        "a new upload_setup (download_setup for a pull: a fresh token) and a new POST at "
        "once, no back-off; a second refusal in a row stops the job with the code",
    ),
    Row(
        "destination file exists without overwrite",
        "ascp 42",
        Remedy.COMPARE_EXISTING,
        "compare each destination file's size with the source's (/files/info): all equal, the "
        "job completes; a difference fails the job naming the file and saying to set "
        "overwrite; never posted again",
    ),
    Row(
        "disk full or quota on the destination",
        "ascp 25",
        Remedy.HOLD_DESTINATION,
        "hold every queued job to that destination (they wait with the reason) and alert "
        "once; one job probes after a cool-down; its success, or `nodes resume`, releases "
        "the hold",
    ),
    Row(
        "authentication failure",
        "HTTP 401/403 from upload_setup or POST /ops/transfers",
        Remedy.DISABLE_NODE,
        "disable the node that refused our credentials and alert once; its jobs wait until "
        "`nodes enable`",
    ),
    Row(
        "source missing",
        "ascp 4; /files/info 404 before posting",
        Remedy.FAIL_NOW,
        "fail at once with the path",
    ),
    Row(
        "network",
        "ascp codes marked retryable (12-18, 23, 32, 33, 35, 36, 39, 40, 44, 45, 61)",
        Remedy.BACK_OFF,
        "a new attempt after an exponential back-off, while attempts are left; counted by "
        "the link's circuit breaker",
    ),
)

_BY_CODE: dict[int, Remedy] = {
    **dict.fromkeys(TOKEN_CODES, Remedy.RESUBMIT_NOW),
    **dict.fromkeys(EXISTS_CODES, Remedy.COMPARE_EXISTING),
    **dict.fromkeys(SPACE_CODES, Remedy.HOLD_DESTINATION),
    **dict.fromkeys(MISSING_CODES, Remedy.FAIL_NOW),
}


def remedy_for(code: int, text: str = "") -> Remedy | None:
    """The remedy for a transfer's ascp code; None leaves the ascp table's classification."""
    found = _BY_CODE.get(code)
    if found is not None:
        return found
    return Remedy.BACK_OFF if code and is_retryable(code, text) else None


def remedy_for_status(status: int | None) -> Remedy | None:
    """The remedy for a Node API HTTP status (a refusal of our credentials disables the node)."""
    return Remedy.DISABLE_NODE if status in NODE_REFUSED_STATUSES else None


def row_of(remedy: Remedy) -> Row:
    """The table's row for a remedy."""
    return next(row for row in TABLE if row.remedy is remedy)


def code_name(code: int) -> str:
    """A code as people read it: "25 NO_SPACE_LEFT"."""
    return f"{code} {describe(code).mnemonic}"
