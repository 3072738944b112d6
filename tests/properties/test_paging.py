"""Property tests: the change-feed paging loop ends and never loses a page (node-api.md §4.1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.nodeapi.client import NodeClient
from orchestrator.nodeapi.paging import follow_pages, next_iteration_token, parse_link_header

# -- Link header forms --------------------------------------------------------------------

tokens = st.integers(min_value=0, max_value=10**12).map(str)


@st.composite
def link_headers(draw: st.DrawFn) -> tuple[str, str | None]:
    """A Link header in one of the forms seen or allowed by RFC 8288, and its next token."""
    token = draw(tokens)
    host = draw(st.sampled_from(["https://hsts.example.com:9092", "http://10.0.0.1", ""]))
    extra = draw(st.sampled_from(["", "&count=100", "&view=summary&tag=a%2Cb", "&x=1,2"]))
    rel = draw(st.sampled_from(['rel="next"', "rel=next", 'REL="Next"', 'rel="prev next"']))
    spaces = draw(st.sampled_from(["", " ", "  "]))
    target = f"<{host}/ops/transfers?iteration_token={token}{extra}>"
    nxt = f"{target};{spaces}{rel}"
    others = draw(
        st.lists(
            st.sampled_from(
                [
                    '<https://h/ops/transfers?iteration_token=1>; rel="prev"',
                    '<https://h/a,b>; rel="self"',
                ]
            ),
            max_size=2,
        )
    )
    with_next = draw(st.booleans())
    parts = [*others, nxt] if with_next else others
    draw(st.randoms()).shuffle(parts)
    return ", ".join(parts), (token if with_next else None)


@given(link_headers())
def test_next_token_is_found_in_every_link_form(case: tuple[str, str | None]) -> None:
    header, expected = case
    assert next_iteration_token(header) == expected


@given(st.text(max_size=200))
def test_link_parser_never_crashes(header: str) -> None:
    parse_link_header(header)
    next_iteration_token(header)


# -- any sequence of answers: the loop ends and hands over every page it fetched ----------

answers = st.lists(
    st.tuples(
        st.lists(st.integers(), max_size=4),  # the page's items
        st.one_of(st.none(), st.sampled_from(["SAME"]), tokens),  # no link / same token / token
    ),
    max_size=30,
)


@given(answers, st.one_of(st.none(), tokens), st.integers(min_value=1, max_value=40))
def test_any_answer_sequence_ends_and_loses_nothing(
    script: list[tuple[list[int], str | None]], start: str | None, max_pages: int
) -> None:
    fetched: list[list[int]] = []
    calls = iter(script)

    def fetch(token: str | None) -> tuple[list[int], str | None]:
        items, nxt = next(calls, ([], "SAME"))
        fetched.append(items)
        return items, (token if nxt == "SAME" else nxt)

    pages = list(follow_pages(fetch, start, max_pages=max_pages))
    assert len(fetched) <= max_pages
    yielded = [i for p in pages for i in p.items]
    assert yielded == [i for page in fetched for i in page], "every fetched item is handed over"


# -- a model node: an activity log, count, a tag filter, a caught-up form -----------------


@dataclass
class ModelNode:
    """A node whose log holds (sequence, transfer id, mine?) entries."""

    entries: list[tuple[int, int, bool]]
    count: int
    caught_up: str  # "same-token" or "no-link"
    calls: int = field(default=0)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        token = request.url.params.get("iteration_token")
        after = int(token) if token is not None else 0
        window = [e for e in self.entries if e[0] > after][: self.count]
        visible = [{"id": str(e[1]), "status": "running"} for e in window if e[2]]
        if window:
            last = window[-1][0]
        elif self.caught_up == "no-link":
            return httpx.Response(200, json=[])
        else:
            last = after
        link = f'<https://node/ops/transfers?iteration_token={last}>; rel="next"'
        return httpx.Response(200, json=visible, headers={"Link": link})


@st.composite
def model_nodes(draw: st.DrawFn) -> ModelNode:
    size = draw(st.integers(min_value=0, max_value=60))
    ids = draw(st.lists(st.integers(1, 8), min_size=size, max_size=size))
    mine = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    entries = [(seq + 1, tid, m) for seq, (tid, m) in enumerate(zip(ids, mine, strict=True))]
    return ModelNode(
        entries,
        count=draw(st.integers(1, 10)),
        caught_up=draw(st.sampled_from(["same-token", "no-link"])),
    )


@settings(max_examples=150)
@given(model_nodes(), st.integers(min_value=0, max_value=60))
def test_every_entry_after_the_cursor_is_seen_and_the_cursor_only_moves_forward(
    node: ModelNode, start: int
) -> None:
    client = NodeClient(
        httpx.Client(transport=httpx.MockTransport(node.answer), base_url="https://node"),
        node="model",
    )
    start_token = str(start) if start else None
    seen: set[str] = set()
    cursor = start
    for page in client.iter_transfer_pages(start_token, max_pages=1000):
        seen.update(t.remote_id for t in page.transfers)
        if page.next_token is not None:
            assert int(page.next_token) >= cursor, "the cursor never goes backwards"
            cursor = int(page.next_token)
    expected = {str(e[1]) for e in node.entries if e[0] > start and e[2]}
    assert seen == expected
    # Polling again from the saved cursor finds nothing new.
    again = client.list_transfers(str(cursor) if cursor else None)
    assert {t.remote_id for t in again.transfers} <= expected
    if cursor >= (node.entries[-1][0] if node.entries else 0):
        assert again.transfers == ()


@settings(max_examples=150)
@given(model_nodes(), st.integers(min_value=0, max_value=60))
def test_short_page_stop_loses_nothing_across_cycles(node: ModelNode, start: int) -> None:
    """Stopping on a short page saves a token from which the next cycle reads the rest."""
    client = NodeClient(
        httpx.Client(transport=httpx.MockTransport(node.answer), base_url="https://node"),
        node="model",
    )
    token = str(start) if start else None
    seen: set[str] = set()
    for _cycle in range(200):
        pages = list(client.iter_transfer_pages(token, count=node.count, max_pages=1000))
        for page in pages:
            seen.update(t.remote_id for t in page.transfers)
            token = page.next_token if page.next_token is not None else token
        if not pages:
            break
    assert seen == {str(e[1]) for e in node.entries if e[0] > start and e[2]}
