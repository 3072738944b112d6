"""Unit tests of the simulator's pure parts: paths, tokens, the activity log, filters, faults."""

from __future__ import annotations

import time

import pytest

from hstssim import errors_table, paths
from hstssim.faults import FaultError, FaultRegistry
from hstssim.feed import FilterError, TagFilter
from hstssim.model import Transfer
from hstssim.spec import parse_transfer_spec
from hstssim.store import TransferStore
from hstssim.tokens import TokenError, TokenIssuer


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/", ""),
        ("", ""),
        ("/a/b/", "a/b"),
        ("a//./b", "a/b"),
        ("/a/../b", "b"),
        ("..", None),
        ("/../etc", None),
        ("a/../../b", None),
        ("a\x00b", None),
    ],
)
def test_normalize(given, expected):
    assert paths.normalize(given) == expected


def test_within():
    assert paths.within("Upload/x", "Upload")
    assert paths.within("Upload", "Upload")
    assert not paths.within("Uploads/x", "Upload")
    assert paths.within("anything", "")


def test_tokens_round_trip_and_refuse_foreign_or_expired():
    issuer = TokenIssuer(b"k" * 32, "node-1")
    token = issuer.issue("xfer", "send", ["Upload"], [], 60)
    assert token.startswith("ATV7_") and token.endswith("TA")
    claims = issuer.open(token)
    assert (claims.user, claims.direction, claims.destinations) == ("xfer", "send", ("Upload",))
    with pytest.raises(TokenError):
        TokenIssuer(b"x" * 32, "node-2").open(token)
    with pytest.raises(TokenError):
        TokenIssuer(b"k" * 32, "node-2").open(token)  # same key, other node id
    with pytest.raises(TokenError):
        issuer.open(issuer.issue("xfer", "send", [""], [], -1))
    with pytest.raises(TokenError):
        issuer.open("not a token")
    assert TokenIssuer(b"short key", "n").issue("u", "receive", [], ["a"], 5).startswith("ATM2_")


def _transfer(tags=None):
    spec = parse_transfer_spec(
        {"direction": "send", "paths": [{"source": "x"}], "remote_host": "h", "token": "t"}
    )
    return Transfer(
        id=str(time.monotonic_ns()),
        spec=spec,
        raw_spec={},
        tags=tags,
        target_rate_kbps=0,
        min_rate_kbps=0,
        rate_policy="fair",
    )


def test_store_pages_by_latest_change():
    store = TransferStore()
    one, two, three = _transfer(), _transfer(), _transfer()
    for t in (one, two, three):
        store.add(t)
    store.record_change(one)  # one moves to the end
    found, token = store.page(None, 10, lambda t: True)
    assert [t.id for t in found] == [two.id, three.id, one.id]
    assert token == store.last_token
    found, token2 = store.page(None, 2, lambda t: True)
    assert [t.id for t in found] == [two.id, three.id]
    found, token3 = store.page(token2, 2, lambda t: True)
    assert [t.id for t in found] == [one.id]
    assert store.page(token3, 2, lambda t: True) == ([], token3)
    assert store.valid_token(token3)
    assert not store.valid_token(token3 + 1)
    assert not store.valid_token(store.base_token - 1)


def test_store_throttles_progress_and_compacts():
    store = TransferStore()
    t = _transfer()
    store.add(t)
    assert not store.record_change(t, min_interval=60)
    for _ in range(3000):
        store.record_change(t)
    found, _ = store.page(None, 10, lambda x: True)
    assert [x.id for x in found] == [t.id]
    assert len(store._seqs) < 2000


def test_store_restart_forgets_ended_and_starts_a_new_epoch():
    store = TransferStore()
    ended, live = _transfer(), _transfer()
    store.add(ended)
    store.add(live)
    ended.status, ended.ended_at = "completed", time.time()
    old = store.last_token
    store.restart()
    assert store.get(ended.id) is None
    assert store.get(live.id) is live
    assert not store.valid_token(old)
    assert store.page(None, 10, lambda t: True) == ([], store.base_token)
    store.record_change(live)
    assert store.page(None, 10, lambda t: True)[0] == [live]


def test_tag_filter():
    tags = {"aspera": {"xfer_retry": 10, "flag": True}, "o": {"job": "7"}}
    assert TagFilter.parse("aspera.xfer_retry").matches(tags)
    assert TagFilter.parse("aspera.xfer_retry=10").matches(tags)
    assert TagFilter.parse("aspera.flag=true").matches(tags)
    assert not TagFilter.parse("aspera.xfer_retry=11").matches(tags)
    assert TagFilter.parse("o.job,aspera.xfer_retry").matches(tags)
    assert not TagFilter.parse("o.job,o.missing").matches(tags)
    assert not TagFilter.parse("o.job").matches(None)
    with pytest.raises(FilterError):
        TagFilter.parse("a..b")


def test_retryable_codes():
    assert errors_table.is_retryable(16)
    assert not errors_table.is_retryable(19)
    assert errors_table.is_retryable(14)
    assert not errors_table.is_retryable(14, "x: Target address not available")
    assert errors_table.describe(41) == "path outside the docroot"
    assert errors_table.describe(999) == "ascp error 999"


def test_fault_registry_counts():
    registry = FaultRegistry()
    registry.add({"kind": "reject_tokens", "count": 2})
    registry.add({"kind": "reject_tokens", "count": None})
    assert registry.take("reject_tokens") is not None
    assert registry.take("reject_tokens") is not None
    assert len(registry.list()) == 1
    assert registry.list()[0]["remaining"] is None
    assert registry.take("drop_connection") is None
    registry.known_endpoints = {"GET /info"}
    with pytest.raises(FaultError):
        registry.add({"kind": "empty_200", "endpoint": "GET /elsewhere"})
    registry.add({"kind": "empty_200", "endpoint": "GET /info"})
    assert registry.take_endpoint("GET /ping") is None
    assert registry.take_endpoint("GET /info") is not None


def test_fault_registry_any_endpoint_and_conditional_firing():
    registry = FaultRegistry()
    registry.known_endpoints = {"GET /info", "GET /ping"}
    registry.add({"kind": "http_error", "endpoint": "*", "status": 502, "count": 2})
    assert registry.take_endpoint("GET /ping") is not None
    assert registry.take_endpoint("GET /whatever") is not None
    assert registry.take_endpoint("GET /info") is None
    registry.add({"kind": "short_page", "size": 3})
    assert registry.take("short_page", lambda spec: False) is None
    assert len(registry.list()) == 1, "a fault whose condition fails does not fire"
    assert registry.take("short_page", lambda spec: True) is not None
    assert registry.list() == []
    for bad in (
        {"kind": "content_type", "endpoint": "GET /info", "after_effect": True},
        {"kind": "short_page", "size": 0},
        {"kind": "repeat_change", "where": "next_page"},
        {"kind": "restart"},
    ):
        with pytest.raises(FaultError):
            registry.add(bad)
