"""Where the CLI writes, how it fails (one clear line and an exit code), and small formatters."""

from __future__ import annotations

import re
from datetime import datetime
from typing import NoReturn

from rich.console import Console

from orchestrator.domain import units

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes every command shares (jobs watch adds its own for the job's outcome).
EXIT_FAILURE = 1  # the API is unreachable, refused, or something else went wrong
EXIT_USAGE = 2  # bad input: a wrong option, or the API answered 400/422


class CliError(Exception):
    """A failure to report as one line on stderr, with the process exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status  # the API's HTTP status, when the API refused


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Stop the command with one line on stderr."""
    raise CliError(message, code)


def usage(message: str) -> NoReturn:
    """Stop the command for bad input (exit 2)."""
    raise CliError(message, EXIT_USAGE)


_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds_of(text: str, option: str) -> int:
    """'15m' -> 900, '2h' -> 7200, '30d' -> 2592000, '90' -> 90; bad input stops (exit 2)."""
    match = _DURATION.match(text.strip())
    if not match:
        usage(f"{option} {text!r}: expected a number with s, m, h or d, e.g. 15m or 1h")
    return int(match.group(1)) * _UNIT[match.group(2)]


def when(text: str | None) -> str:
    """An API timestamp in UTC, as the dashboard shows it: '2026-11-23 11:22:13 UTC'."""
    if not text:
        return "-"
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return text
    return units.moment(at)


def say_error(message: str) -> None:
    """Print ``error: message`` on stderr as a single line (no markup, no wrapping)."""
    err.print(f"error: {message}", markup=False, style="bold red", soft_wrap=True)


def say_warning(message: str) -> None:
    """Print ``warning: message`` on stderr as a single line (no markup, no wrapping)."""
    err.print(f"warning: {message}", markup=False, style="yellow", soft_wrap=True)


def human_bytes(count: int | float | None) -> str:
    """1536 -> '1.54 KB' (decimal units, as the dashboard shows them)."""
    return units.size(count, missing="?")


def human_rate(kbps: float | None) -> str:
    """A rate in kilobits per second as the dashboard shows it: '12.5 Mbps'."""
    return units.bitrate(kbps, missing="-")
