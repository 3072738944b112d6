"""Change-feed paging for GET /ops/transfers: the Link header and the stop rules.

The cursor lives in ``Link: <…?iteration_token=N>; rel="next"``, never in the body
(node-api.md §4.1). Rules, applied after each page has been handed to the caller, so that no
page is lost (the bug IBM's CLI fixed in 4.25.6, node-api.md §4.1):

* no ``rel="next"`` link: stop, keep the current token;
* the next token equals the current one: caught up, stop;
* the body was empty and the token moved: the node skipped entries a filter hid; follow it
  (the seed document's rule: stop on an empty array whose token does not change);
* a token already seen in this run, or ``max_pages`` pages: stop and resume next cycle;
* with ``page_size``: a page shorter than it means the node had no more, so stop without the
  extra request that would only confirm it (if a filter made the page short, the rest is read
  next cycle from the saved token: later, never lost).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LinkValue:
    """One link of an RFC 8288 Link header."""

    target: str
    rels: frozenset[str]
    params: dict[str, str]


def _split_outside(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth_angle = in_quotes = False
    for char in text:
        if char == '"' and not depth_angle:
            in_quotes = not in_quotes
        elif char == "<" and not in_quotes:
            depth_angle = True
        elif char == ">" and not in_quotes:
            depth_angle = False
        if char == sep and not depth_angle and not in_quotes:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_link_header(value: str | None) -> list[LinkValue]:
    """Parse a Link header; commas may appear inside <…> and quotes; rel is case-insensitive."""
    if not value:
        return []
    links = []
    for raw in _split_outside(value, ","):
        segments = _split_outside(raw.strip(), ";")
        target = segments[0].strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        params: dict[str, str] = {}
        for segment in segments[1:]:
            name, _, val = segment.partition("=")
            params[name.strip().lower()] = val.strip().strip('"')
        rels = frozenset(r.lower() for r in params.get("rel", "").split())
        links.append(LinkValue(target=target[1:-1].strip(), rels=rels, params=params))
    return links


def next_iteration_token(link_header: str | None) -> str | None:
    """The iteration_token of the rel="next" link, or None if there is none."""
    for link in parse_link_header(link_header):
        if "next" in link.rels:
            values = parse_qs(urlsplit(link.target).query).get("iteration_token")
            if values and values[0]:
                return values[0]
    return None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of items and the token to save once those items are stored."""

    items: list[T]
    token: str | None


def follow_pages(
    fetch: Callable[[str | None], tuple[list[T], str | None]],
    start: str | None,
    *,
    max_pages: int = 100,
    page_size: int | None = None,
) -> Iterator[Page[T]]:
    """Fetch pages from ``start`` until caught up; yield each page with the cursor after it.

    ``fetch(token)`` returns the page's items and the rel="next" token (None if no link).
    """
    current = start
    seen = {start}
    for _ in range(max_pages):
        items, following = fetch(current)
        if following is None or following == current:
            if items:
                yield Page(items, current)
            return
        yield Page(items, following)
        if following in seen or (page_size is not None and 0 < len(items) < page_size):
            return
        seen.add(following)
        current = following
