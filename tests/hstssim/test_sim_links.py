"""Link capacity, the node's own queue, and other clients' transfers on simulated nodes."""

from __future__ import annotations

import pytest

OUR_TAG = {"orchestrator": {"job_id": "j-1"}}
MBPS_100 = 100_000


def set_link(sim, kbps, src="node-a", dst="node-b"):
    body = {"links": [{"from": src, "to": dst, "capacity_kbps": kbps}]}
    answer = sim.admin("a").put("/admin/network", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def foreign(sim, **body):
    """Start another client's transfer on node-a towards node-b; return its id."""
    body.setdefault("peer", "node-b")
    answer = sim.admin("a").post("/admin/foreign_transfers", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def feed_rates(sim, ids):
    """Return {id: calc_rate_kbps} as the feed shows the running transfers (None: not running)."""
    listed = {t["id"]: t for t in sim.client("a").get("/ops/transfers").json()}
    rates = {}
    for transfer_id in ids:
        shown = listed[transfer_id]
        running = shown["status"] == "running" and shown["sessions"]
        rates[transfer_id] = shown["sessions"][-1]["calc_rate_kbps"] if running else None
    return rates


def rates_become(sim, wait_for, expected):
    """Wait until the feed reports exactly the expected rates."""
    return wait_for(lambda: feed_rates(sim, list(expected)) == expected)


def cancel(sim, *ids):
    for transfer_id in ids:
        answer = sim.client("a").request("CANCEL", f"/ops/transfers/{transfer_id}")
        assert answer.status_code == 204


def flows(sim, name):
    """Return the flows on the cluster's network, as node name's admin API shows them."""
    return sim.admin(name).get("/admin/network").json()["flows"]


def download_spec(sim, src, source):
    """Call download_setup on src and return its transfer spec without null members."""
    request = {"paths": [{"source": source}]}
    answer = sim.client(src).post(
        "/files/download_setup", json={"transfer_requests": [{"transfer_request": request}]}
    )
    assert answer.status_code == 200, answer.text
    spec = answer.json()["transfer_specs"][0]["transfer_spec"]
    return {key: value for key, value in spec.items() if value is not None}


def test_two_transfers_at_80_on_a_100_mbps_link_get_50_each(sim, wait_for):
    set_link(sim, MBPS_100)
    size = 4 * 1024 * 1024
    pushed = sim.random_file("a", "push.bin", size)
    pulled = sim.random_file("a", "pub/pull.bin", size)
    # Both cross node-a -> node-b: an upload node-a runs and a download node-b runs.
    upload = sim.start("a", sim.upload_spec("b"), ["push.bin"], target_rate_kbps=80_000)
    download_body = {**download_spec(sim, "a", "/pub/pull.bin"), "destination_root": "/In"}
    download = sim.start("b", download_body, ["/pub/pull.bin"], target_rate_kbps=80_000)
    wait_for(lambda: sorted(f["rate_kbps"] for f in flows(sim, "b")) == [50_000, 50_000])
    assert {(f["node"], f["from"], f["to"]) for f in flows(sim, "a")} == {
        ("node-a", "node-a", "node-b"),
        ("node-b", "node-a", "node-b"),
    }
    rates_become(sim, wait_for, {upload: 50_000})
    ended = [sim.wait("a", upload), sim.wait("b", download)]
    assert [t["status"] for t in ended] == ["completed", "completed"]
    assert (sim.docroot("b") / "Upload/push.bin").read_bytes() == pushed
    assert (sim.docroot("b") / "In/pull.bin").read_bytes() == pulled
    # The link never carried more than 100 Mbps: 8 MiB took at least 8 MiB / 100 Mbps.
    first = min(t["start_time_usec"] for t in ended)
    last = max(t["end_time_usec"] for t in ended)
    assert (last - first) / 1e6 >= 2 * size * 8 / (MBPS_100 * 1000) * 0.95
    assert flows(sim, "a") == []


def test_fixed_is_served_first_then_fair_gets_twice_low(sim, wait_for):
    set_link(sim, MBPS_100)
    fixed = foreign(sim, target_rate_kbps=40_000, rate_policy="fixed")
    fair = foreign(sim, target_rate_kbps=MBPS_100, rate_policy="fair")
    low = foreign(sim, target_rate_kbps=MBPS_100, rate_policy="low")
    rates_become(sim, wait_for, {fixed: 40_000, fair: 40_000, low: 20_000})
    cancel(sim, fixed)
    rates_become(sim, wait_for, {fair: pytest.approx(66_666.67), low: pytest.approx(33_333.33)})
    set_link(sim, 0)  # unlimited again: each runs at its own target
    rates_become(sim, wait_for, {fair: MBPS_100, low: MBPS_100})
    cancel(sim, fair, low)


def test_rate_change_and_pause_re_share_the_link(sim, wait_for):
    set_link(sim, MBPS_100)
    first = foreign(sim, target_rate_kbps=80_000)
    second = foreign(sim, target_rate_kbps=80_000)
    rates_become(sim, wait_for, {first: 50_000, second: 50_000})
    assert sim.client("a").put(f"/ops/transfers/{first}", json={"status": "paused"}).is_success
    rates_become(sim, wait_for, {second: 80_000})
    assert sim.client("a").put(f"/ops/transfers/{first}", json={"status": "running"}).is_success
    rates_become(sim, wait_for, {first: 50_000, second: 50_000})
    changed = sim.client("a").put(f"/ops/transfers/{first}", json={"target_rate_kbps": 20_000})
    assert changed.status_code == 200
    rates_become(sim, wait_for, {first: 20_000, second: 80_000})
    changed = sim.client("a").put(f"/ops/transfers/{second}", json={"rate_policy": "fixed"})
    rates_become(sim, wait_for, {first: 20_000, second: 80_000})
    cancel(sim, first, second)


def test_sessions_beyond_the_limit_queue_and_start_in_order(sim, wait_for):
    sim.set("a", max_concurrent_sessions=2)
    others = [foreign(sim, target_rate_kbps=1_000) for _ in range(2)]
    wait_for(lambda: all(sim.transfer("a", t)["status"] == "running" for t in others))
    spec = sim.upload_spec("b")
    data = {name: sim.random_file("a", name, 20_000) for name in ("third.bin", "fourth.bin")}
    third, fourth = (sim.start("a", spec, [name], tags=OUR_TAG) for name in data)
    for queued in (third, fourth):
        shown = sim.transfer("a", queued)
        assert (shown["status"], shown["sessions"]) == ("waiting", [])
    cancel(sim, others[0])
    ended_third = sim.wait("a", third)
    assert ended_third["status"] == "completed"
    ended_fourth = sim.wait("a", fourth)
    assert ended_fourth["status"] == "completed"
    # The other client's transfer still holds a slot, so the fourth started once the third ended.
    assert ended_fourth["sessions"][0]["start_time_usec"] >= ended_third["end_time_usec"]
    assert sim.transfer("a", others[1])["status"] == "running"
    for name, content in data.items():
        assert (sim.docroot("b") / "Upload" / name).read_bytes() == content
    cancel(sim, others[1])


def test_other_clients_transfers_show_without_our_tag_and_take_capacity(sim, wait_for):
    set_link(sim, 10_000)
    endless = foreign(sim, target_rate_kbps=8_000, title="backup of another client")
    sized = foreign(sim, target_rate_kbps=8_000, bytes=40_000, rate_policy="high")
    done = sim.wait("a", sized)
    assert (done["status"], done["bytes_transferred"], done["files"]) == ("completed", 40_000, [])
    assert done["sessions"][0]["status"] == "completed"
    listed = {t["id"]: t for t in sim.client("a").get("/ops/transfers").json()}
    assert "tags" not in listed[endless]["start_spec"]
    assert listed[endless]["title"] == "backup of another client"
    tagged = sim.client("a").get("/ops/transfers", params={"tag": "orchestrator.job_id"}).json()
    assert tagged == []
    (flow,) = flows(sim, "a")
    assert (flow["transfer_id"], flow["foreign"], flow["rate_kbps"]) == (endless, True, 8_000)
    wait_for(lambda: sim.transfer("a", endless)["bytes_transferred"] > 0)
    assert sim.admin("a").get("/admin/counters").json()["transfers_created"] == 0
    cancel(sim, endless)
    assert sim.wait("a", endless)["status"] == "canceled"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_rate_kbps": 1000}, "peer"),
        ({"peer": "node-z", "target_rate_kbps": 1000}, "node-z"),
        ({"peer": "node-a", "target_rate_kbps": 1000}, "node-a"),
        ({"peer": "node-b"}, "target_rate_kbps"),
        ({"peer": "node-b", "target_rate_kbps": 1000, "rate_policy": "max"}, "rate_policy"),
        ({"peer": "node-b", "target_rate_kbps": 1000, "bytes": 0}, "bytes"),
        ({"peer": "node-b", "target_rate_kbps": 1000, "speed": 1}, "speed"),
    ],
)
def test_bad_foreign_transfers_are_400_naming_the_field(sim, body, field):
    answer = sim.admin("a").post("/admin/foreign_transfers", json=body)
    assert answer.status_code == 400
    assert field in answer.json()["error"]["user_message"]


def test_network_settings_are_checked_then_applied(sim):
    admin = sim.admin("a")
    for body, field in [
        ({"links": [{"to": "node-z", "capacity_kbps": 1}]}, "links[0].to"),
        ({"links": [{"to": "node-b", "capacity_kbps": -1}]}, "links[0].capacity_kbps"),
        ({"links": [{"to": "node-a", "capacity_kbps": 1}]}, "links[0]"),
        ({"nodes": {"node-a": {"inbound": 1}}}, "nodes.node-a"),
        ({"bandwidth": 1}, "links"),
    ]:
        answer = admin.put("/admin/network", json=body)
        assert answer.status_code == 400, body
        assert field in answer.json()["error"]["user_message"]
    assert admin.get("/admin/network").json()["links"] == []
    shown = admin.put(
        "/admin/network",
        json={
            "links": [{"to": "node-b", "capacity_kbps": 5_000}],
            "nodes": {"node-b": {"inbound_kbps": 7_000}},
        },
    ).json()
    assert shown["links"] == [{"from": "node-a", "to": "node-b", "capacity_kbps": 5_000}]
    assert shown["nodes"]["node-b"] == {"inbound_kbps": 7_000, "outbound_kbps": 0}
    assert sim.admin("a").get("/admin/network", headers={"X-Admin-Token": "x"}).status_code == 401
