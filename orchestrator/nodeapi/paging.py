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
  next cycle from the saved token: later, never lost), unless ``may_hold_more`` says the node
  may cap its pages there (``ShortPageRule``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
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
    may_hold_more: Callable[[int], bool] | None = None,
) -> Iterator[Page[T]]:
    """Fetch pages from ``start`` until caught up; yield each page with the cursor after it.

    ``fetch(token)`` returns the page's items and the rel="next" token (None if no link).
    ``may_hold_more(length)`` is asked about a non-empty page shorter than ``page_size``:
    True follows it all the same.
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
        if following in seen:
            return
        short = page_size is not None and 0 < len(items) < page_size
        if short and (may_hold_more is None or not may_hold_more(len(items))):
            return
        seen.add(following)
        current = following


PROBE_EVERY = 8  # a page as long as one that held nothing back is still followed every 8th time


class ShortPageRule:
    """Learns, per node, whether a feed page shorter than ``count`` may still leave more behind.

    Some nodes cap their pages below the ``count`` asked for, so a full page of theirs looks
    short; others return fewer items only because fewer transfers changed. A cap is the
    longest page a node returns, and it returns it again whenever more changes wait; but
    lengths alone cannot tell a node that caps at 100 from one running exactly 100 transfers
    that all moved. So when a page is as long as the longest the node has returned before, the
    next page is read (a probe) and it decides: a capping node's next page holds transfers the
    poll had not seen (the older changes it held back); a node that listed everything shows only
    transfers that moved again since, or nothing. After a probe that found nothing held back,
    pages of that length end the poll, and one in ``PROBE_EVERY`` is probed again, should a node
    cap exactly there. A longer page than ever ends the poll too: if it was a cap, the next
    poll's page is as long and is probed. Stopping early never loses a change: the rest is read
    from the saved token by the next poll.
    """

    def __init__(self) -> None:
        self.longest = 0  # the longest non-empty page the node has returned
        self.cleared_at: int | None = None  # the length whose last probe found nothing more
        self._skipped = 0
        self._probing: int | None = None  # the length being probed, until its next page
        self._seen: set[Hashable] = set()

    def begin(self) -> None:
        """A new run of pages starts (one poll)."""
        self._probing = None
        self._seen = set()

    def saw(self, keys: Iterable[Hashable]) -> None:
        """A page was fetched with these item keys; a probe's page gives its verdict."""
        page = set(keys)
        if self._probing is not None:
            self.cleared_at = self._probing if page <= self._seen else None
            self._probing = None
        self._seen |= page

    def may_hold_more(self, length: int) -> bool:
        """Whether to fetch the page after a non-empty page of ``length`` items below count."""
        if length != self.longest:
            self.longest = max(self.longest, length)
            return False
        if self.cleared_at == length and self._skipped < PROBE_EVERY - 1:
            self._skipped += 1
            return False
        self._skipped = 0
        self._probing = length
        return True
