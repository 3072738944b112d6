"""``--help`` as people read it: paragraphs re-flowed to the terminal (a docstring's line breaks
are not the reader's), flags without a ``<bool>`` placeholder, arguments named in capitals."""

from __future__ import annotations

import inspect
from typing import Any

import typer


def reflow(text: str | None) -> str | None:
    """Join the lines of each paragraph; paragraphs stay apart (``\\b`` ones stay as written)."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def polish(command: Any, help_option_names: list[str]) -> None:
    """Re-flow the help of ``command`` and its sub-commands; tidy their parameters."""
    command.help = reflow(command.help)
    context = typer.Context(command, help_option_names=help_option_names)
    params = list(command.params)
    help_option = command.get_help_option(context)  # made once, then kept by the command
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""  # a flag takes no value: no <bool> in the help
        elif param.param_type_name == "argument" and param.metavar is None and param.name:
            param.metavar = param.name.upper()
    for sub in getattr(command, "commands", {}).values():
        polish(sub, help_option_names)
