"""Text a person will read (paths, labels, names): no control, invisible-format or bidi characters.

A right-to-left override or a line separator in a path or a label makes what a dashboard or a
log line shows differ from what is stored (``report\u202eexe.pdf`` reads as ``reportfdp.exe``),
so such characters are refused wherever a caller names something.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls (NUL, newline, NEL, ...); Cf: format characters, among them the bidi
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), the marks (U+200E/F,
# U+061C) and zero-width characters; Cs: lone surrogates; Zl/Zp: line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unreadable_character(text: str) -> str | None:
    """The first character of ``text`` a reader could be fooled by, as U+XXXX; None if none."""
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def check_readable(text: str) -> str:
    """``text`` unchanged, or a ValueError naming the first refused character."""
    found = unreadable_character(text)
    if found is not None:
        raise ValueError(
            f"control, invisible or bidirectional characters are not allowed ({found})"
        )
    return text
