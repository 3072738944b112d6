"""Change-feed paging against hstssim over HTTP: when a page shorter than `count` ends a poll.

A node that caps its pages below `count` (hstssim's `short_page` fault) is read to the end in
one poll once its pages showed the cap; a node that lists everything costs one request per
poll even when its page is as long as the longest it ever returned (every running transfer
moved).
"""

from __future__ import annotations

import os
from typing import Any

from orchestrator.nodeapi.client import NodeClient
from tests.nodeapi.conftest import Pair
from tests.nodeapi.test_client_live import start_copy
from tests.support.sim import client_for, wait_for, write_tree

FEED = "GET /ops/transfers"


def feed_requests(pair: Pair) -> int:
    """GET /ops/transfers requests node A has answered so far."""
    return int(pair.admin_a.counters()["requests"].get(FEED, 0))


def poll(client: NodeClient, pair: Pair, token: str | None) -> tuple[str | None, list[Any], int]:
    """One poll as the poller makes it: the saved token, pages of the first, requests it took."""
    before = feed_requests(pair)
    pages = list(client.iter_transfer_pages(token, view="summary", count=500))
    for page in pages:
        token = page.next_token if page.next_token is not None else token
    return token, [list(p.transfers) for p in pages], feed_requests(pair) - before


def node_states(pair: Pair, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Node A's own view of these transfers, by id."""
    return {t["id"]: t for t in pair.admin_a.transfers() if t["id"] in ids}


def test_a_node_that_caps_its_pages_is_read_to_the_end_once_it_showed_the_cap(pair: Pair) -> None:
    client = client_for(pair.a)  # nothing learned about this node yet
    try:
        token = client.list_transfers().next_token  # without count: teaches it nothing
        write_tree(pair.root_a / "outgoing", {"cap/f.txt": b"capped"})
        first = [start_copy(pair, ["cap"], destination_root=f"/cap-{n}")[0] for n in range(7)]
        wait_for(
            lambda: (
                all(t["status"] == "completed" for t in node_states(pair, first).values())
                and len(node_states(pair, first)) == 7
            )
        )
        pair.admin_a.fault(kind="short_page", size=2, count=0)  # every page: at most 2

        # The first page of 2 is the longest yet: it ends the poll (the rest is read later,
        # from the saved token). Once the node returns 2 again, the next page is read, shows
        # transfers not seen before (what the node held back), and full pages are followed.
        token, pages, requests = poll(client, pair, token)
        assert ([len(p) for p in pages], requests) == ([2], 1)
        read = {t.remote_id for p in pages for t in p}

        token, pages, requests = poll(client, pair, token)

        assert [len(p) for p in pages] == [2, 2, 1]
        read |= {t.remote_id for p in pages for t in p}
        assert read >= set(first), "the second poll read the rest"
        assert requests == 3  # the page of 1 was short of the longest: caught up

        later = [start_copy(pair, ["cap"], destination_root=f"/cap-b{n}")[0] for n in range(5)]
        wait_for(
            lambda: (
                all(t["status"] == "completed" for t in node_states(pair, later).values())
                and len(node_states(pair, later)) == 5
            )
        )
        _, pages, _ = poll(client, pair, token)
        assert {t.remote_id for p in pages for t in p} >= set(later), "full pages are followed"
    finally:
        client.close()


def test_a_node_that_lists_everything_costs_one_request_per_poll(pair: Pair) -> None:
    client = client_for(pair.a)
    try:
        token = client.list_transfers().next_token
        write_tree(pair.root_a / "outgoing", {"all/big.bin": os.urandom(1_000_000)})
        ids = [
            start_copy(
                pair, ["all"], destination_root=f"/all-{n}", options={"target_rate_kbps": 400}
            )[0]
            for n in range(4)
        ]
        wait_for(
            lambda: (
                len(node_states(pair, ids)) == 4
                and all(t["bytes_transferred"] > 0 for t in node_states(pair, ids).values())
            )
        )
        polls: list[tuple[int, int]] = []  # (first page's length, requests), every poll

        def four_polls_listing_all_four() -> bool:
            nonlocal token
            token, pages, requests = poll(client, pair, token)
            polls.append((len(pages[0]) if pages else 0, requests))
            return sum(1 for length, _ in polls if length == 4) >= 4

        wait_for(four_polls_listing_all_four, every=0.15)

        full = [requests for length, requests in polls if length == 4]
        # The first page of 4 is the longest yet and ends its poll; the second might be a cap,
        # so the page after it is read (it shows the same transfers moving on, nothing held
        # back). From then on a page of 4 ends the poll.
        assert full[:2] == [1, 2], polls
        assert full[2:] == [1] * (len(full) - 2), polls
        assert all(requests == 1 for length, requests in polls if length < 4), polls
    finally:
        for remote_id in ids:
            client.cancel_transfer(remote_id)
        client.close()
