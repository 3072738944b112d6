"""GET /ops/transfers: the change feed, its Link cursor, filters, views, expiry and restarts."""

from __future__ import annotations

import re
import time

import pytest

LINK = re.compile(r'^<(?P<url>[^>]+\?iteration_token=(?P<token>\d+))>; rel="next"$')
INVALID_TOKEN = {
    "error": {"code": 400, "reason": "Bad Request", "user_message": "Invalid iteration_token"}
}


def page(sim, node="a", **params):
    """GET one page; return (body, next token)."""
    response = sim.client(node).get("/ops/transfers", params=params)
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    match = LINK.match(response.headers["link"])
    assert match, response.headers["link"]
    assert match["url"].startswith(sim.node(node).api_url + "/ops/transfers?")
    return response.json(), int(match["token"])


def quick_transfers(sim, count, **extra):
    """Run count small uploads to completion; return their ids in order."""
    sim.write("a", "q.txt", b"q")
    spec = sim.upload_spec("b")
    ids = []
    for _ in range(count):
        transfer_id = sim.start("a", spec, ["q.txt"], overwrite="always", **extra)
        sim.wait("a", transfer_id)
        ids.append(transfer_id)
    return ids


def slow_transfer(sim, size=300_000, rate_kbps=2000, **extra):
    """Start an upload that runs for a while (size bytes at rate_kbps)."""
    sim.random_file("a", "slow.bin", size)
    return sim.start("a", sim.upload_spec("b"), ["slow.bin"], target_rate_kbps=rate_kbps, **extra)


def test_empty_feed_is_an_empty_array_with_a_link(sim):
    body, token = page(sim)
    assert body == []
    again, same = page(sim, iteration_token=token)
    assert (again, same) == ([], token)


def test_cursor_lists_each_change_once_and_catches_up_with_the_same_token(sim):
    first = quick_transfers(sim, 1)[0]
    body, token = page(sim)
    assert [t["id"] for t in body] == [first]
    assert body[0]["status"] == "completed"
    caught_up, same = page(sim, iteration_token=token)
    assert caught_up == []
    assert same == token
    second = quick_transfers(sim, 1)[0]
    body, newer = page(sim, iteration_token=token)
    assert [t["id"] for t in body] == [second]
    assert newer > token


def test_a_transfer_reappears_when_it_changes(sim, wait_for):
    transfer_id = slow_transfer(sim)
    seen = []
    token = None

    def collect():
        nonlocal token
        params = {} if token is None else {"iteration_token": token}
        body, token = page(sim, **params)
        seen.extend((t["id"], t["status"], t["bytes_transferred"]) for t in body)
        return any(status == "completed" for _, status, _ in seen)

    wait_for(collect, timeout=10, interval=0.05)
    assert {tid for tid, _, _ in seen} == {transfer_id}
    statuses = [status for _, status, _ in seen]
    assert "running" in statuses
    assert statuses[-1] == "completed"
    progress = [done for _, status, done in seen if status == "running"]
    assert len(progress) >= 2
    assert progress == sorted(progress)


def test_count_pages_oldest_first_without_loss_or_repeat(sim):
    ids = quick_transfers(sim, 5)
    seen = []
    body, token = page(sim, count=2)
    while body:
        assert len(body) <= 2
        seen.extend(t["id"] for t in body)
        body, token = page(sim, count=2, iteration_token=token)
    assert seen == ids
    assert page(sim, iteration_token=token) == ([], token)


def test_default_page_size_is_100(sim, wait_for):
    spec = sim.upload_spec("b")
    ids = [sim.start("a", spec, ["/missing"]) for _ in range(101)]  # each fails fast (code 4)
    wait_for(lambda: all(t["status"] == "failed" for t in page(sim, view="summary")[0]))
    first, token = page(sim, view="id")
    assert len(first) == 100
    rest, _ = page(sim, view="id", iteration_token=token)
    assert [t["id"] for t in first + rest] == ids


def test_tag_filter_presence_and_value(sim):
    one = quick_transfers(sim, 1, tags={"myorch": {"job_id": "1"}, "aspera": {"xfer_retry": 10}})
    two = quick_transfers(sim, 1, tags={"myorch": {"job_id": "2"}})
    quick_transfers(sim, 1)
    ids = lambda body: [t["id"] for t in body]  # noqa: E731
    assert ids(page(sim, tag="myorch.job_id")[0]) == one + two
    assert ids(page(sim, tag="myorch.job_id=2")[0]) == two
    assert ids(page(sim, tag="aspera.xfer_retry=10")[0]) == one
    assert ids(page(sim, tag="myorch.job_id,aspera.xfer_retry")[0]) == one
    assert ids(page(sim, tag="myorch.nothing")[0]) == []
    raw = sim.client("a").get("/ops/transfers?tag=myorch.job_id%3D1")
    assert ids(raw.json()) == one


def test_tag_filter_on_an_empty_page_keeps_the_token(sim):
    _, start = page(sim)
    quick_transfers(sim, 2)
    body, token = page(sim, tag="nobody.has_this", iteration_token=start)
    assert body == []
    assert token == start


def test_views(sim):
    (transfer_id,) = quick_transfers(sim, 1)
    assert page(sim, view="id")[0] == [{"id": transfer_id}]
    full = page(sim)[0][0]
    summary = page(sim, view="summary")[0][0]
    short = page(sim, view="short_summary")[0][0]
    assert full.get("files")
    assert "files" not in summary and "start_spec" in summary and summary["sessions"]
    assert "files" not in short and "start_spec" not in short and short["sessions"]
    assert short["status"] == summary["status"] == "completed"


def test_max_items_caps_files_across_the_page(sim):
    quick_transfers(sim, 3)
    body, _ = page(sim, max_items=2)
    assert sum(len(t["files"]) for t in body) == 2


def test_active_only_and_direction(sim, wait_for):
    (done,) = quick_transfers(sim, 1)
    running = slow_transfer(sim)
    wait_for(lambda: sim.transfer("a", running)["status"] == "running")
    assert [t["id"] for t in page(sim, active_only="true")[0]] == [running]
    assert [t["id"] for t in page(sim, active_only="false")[0]] == [done]
    assert {t["id"] for t in page(sim, direction="send")[0]} == {done, running}
    assert page(sim, direction="receive")[0] == []
    sim.client("a").put(f"/ops/transfers/{running}", json={"target_rate_kbps": 0})
    sim.wait("a", running)


def test_active_only_leaves_out_paused_transfers(sim, wait_for):
    running = slow_transfer(sim, rate_kbps=400)
    sim.client("a").put(f"/ops/transfers/{running}", json={"status": "paused"})
    assert sim.transfer("a", running)["status"] == "paused"
    assert page(sim, active_only="true")[0] == []
    assert [t["id"] for t in page(sim, active_only="false")[0]] == [running]
    sim.client("a").request("CANCEL", f"/ops/transfers/{running}")


def test_active_only_leaves_out_partially_completed_transfers(sim, wait_for):
    sim.set("a", retry_delay_seconds=60)  # the retry waits; CANCEL ends it below
    sim.fault("a", kind="fail_transfers", error_code=16)
    sim.write("a", "f.txt", b"x")
    retrying = sim.start("a", sim.upload_spec("b"), ["f.txt"])
    sim.wait("a", retrying, statuses=("partially_completed",))
    assert page(sim, active_only="true")[0] == []
    assert [t["id"] for t in page(sim, active_only="false")[0]] == [retrying]
    assert sim.client("a").request("CANCEL", f"/ops/transfers/{retrying}").status_code == 204
    assert sim.transfer("a", retrying)["status"] == "canceled"


def test_after_time(sim):
    quick_transfers(sim, 1)
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    assert len(page(sim, after_time=past)[0]) == 1
    assert page(sim, after_time=future)[0] == []
    assert (
        sim.client("a").get("/ops/transfers", params={"after_time": "yesterday"}).status_code == 400
    )


@pytest.mark.parametrize("token", ["0", "1"])
def test_the_beginning_tokens_start_from_the_oldest_record(sim, token):
    ids = quick_transfers(sim, 3)
    body, next_token = page(sim, iteration_token=token, count=2)
    assert [t["id"] for t in body] == ids[:2]
    rest, last = page(sim, iteration_token=next_token)
    assert [t["id"] for t in rest] == ids[2:]
    assert page(sim, iteration_token=last) == ([], last)
    assert page(sim, iteration_token=token)[0][0]["id"] == ids[0]  # still the beginning


@pytest.mark.parametrize("token", ["abc", "-1", "2", "<epoch start - 1>", "<future>"])
def test_unknown_iteration_tokens_are_400(sim, token):
    _, current = page(sim)
    value = {"<future>": str(current + 1000), "<epoch start - 1>": str(current - 1)}.get(
        token, token
    )
    response = sim.client("a").get("/ops/transfers", params={"iteration_token": value})
    assert response.status_code == 400
    assert response.json() == INVALID_TOKEN


def test_activity_logging_off_is_404(sim):
    sim.set("a", activity_logging=False)
    response = sim.client("a").get("/ops/transfers")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": 404,
            "reason": "Not Found",
            "user_message": "Transfer activity logging disabled",
        }
    }


def test_records_expire_after_retention(sim, wait_for):
    (transfer_id,) = quick_transfers(sim, 1)
    assert sim.client("a").get(f"/ops/transfers/{transfer_id}").status_code == 200
    sim.set("a", retention_seconds=0.2)
    wait_for(lambda: sim.client("a").get(f"/ops/transfers/{transfer_id}").status_code == 404)
    response = sim.client("a").get(f"/ops/transfers/{transfer_id}")
    assert response.json()["error"]["code"] == 404
    assert page(sim)[0] == []


def test_records_expire_while_the_client_is_behind(sim, wait_for):
    _, behind = page(sim)  # the client read the feed, then stopped polling
    ended = quick_transfers(sim, 2)
    running = slow_transfer(sim, size=300_000, rate_kbps=200)  # would take 12 s
    wait_for(lambda: sim.transfer("a", running)["status"] == "running")
    sim.set("a", retention_seconds=0.3)

    def expired():
        return all(sim.client("a").get(f"/ops/transfers/{t}").status_code == 404 for t in ended)

    wait_for(expired)
    body, token = page(sim, iteration_token=behind)  # the old token still works
    assert [t["id"] for t in body] == [running]
    assert sim.transfer("a", running)["status"] == "running"  # only ended records expire
    sim.client("a").put(f"/ops/transfers/{running}", json={"target_rate_kbps": 0})
    assert sim.wait("a", running)["status"] == "completed"
    assert token >= behind


def test_admin_expire_drops_ended_records_now(sim, wait_for):
    (done,) = quick_transfers(sim, 1)
    running = slow_transfer(sim)
    answer = sim.admin("a").post("/admin/expire", json={"older_than_seconds": 0})
    assert answer.json() == {"expired": 1}
    assert sim.client("a").get(f"/ops/transfers/{done}").status_code == 404
    assert sim.client("a").get(f"/ops/transfers/{running}").status_code == 200
    sim.client("a").request("CANCEL", f"/ops/transfers/{running}")


def test_restart_invalidates_old_tokens_and_forgets_history(sim, wait_for):
    (done,) = quick_transfers(sim, 1)
    running = slow_transfer(sim, size=200_000, rate_kbps=1600)
    _, old_token = page(sim)
    restart = sim.admin("a").post("/admin/restart")
    assert restart.status_code == 200
    assert [t["id"] for t in restart.json()["forgotten"]] == [done]  # listed as it goes
    response = sim.client("a").get("/ops/transfers", params={"iteration_token": old_token})
    assert response.status_code == 400
    assert response.json() == INVALID_TOKEN
    assert sim.client("a").get(f"/ops/transfers/{done}").status_code == 404
    body, new_token = page(sim)
    assert new_token > old_token
    assert done not in [t["id"] for t in body]

    def running_reappears():
        return running in [t["id"] for t in page(sim)[0]]

    wait_for(running_reappears)
    assert sim.wait("a", running)["status"] == "completed"


def test_short_pages_hold_fewer_than_count_while_more_remain(sim):
    ids = quick_transfers(sim, 5)
    sim.fault("a", kind="short_page", size=2, count=0)
    body, token = page(sim, count=100)
    assert len(body) == 2
    seen = []
    while body:
        assert len(body) <= 2
        seen.extend(t["id"] for t in body)
        body, token = page(sim, count=100, iteration_token=token)
    assert seen == ids


def test_short_page_fires_only_on_pages_it_shortens(sim):
    ids = quick_transfers(sim, 3)
    sim.fault("a", kind="short_page", size=2)
    first, _ = page(sim, count=2)  # not longer than size: untouched, the fault stays armed
    assert [t["id"] for t in first] == ids[:2]
    assert len(sim.admin("a").get("/admin/faults").json()) == 1
    assert [t["id"] for t in page(sim)[0]] == ids[:2]
    assert sim.admin("a").get("/admin/faults").json() == []
    assert [t["id"] for t in page(sim)[0]] == ids


def test_repeat_change_from_the_previous_page(sim):
    ids = quick_transfers(sim, 3)
    sim.fault("a", kind="repeat_change")  # where: previous_page
    first, token = page(sim, count=2)  # no token: nothing before it to repeat
    assert [t["id"] for t in first] == ids[:2]
    second, last = page(sim, count=2, iteration_token=token)
    assert [t["id"] for t in second] == [ids[1], ids[2]]
    assert second[0] == first[1]  # the same change, listed again
    assert page(sim, iteration_token=last) == ([], last)


def test_repeat_change_on_a_caught_up_page_keeps_the_token(sim):
    ids = quick_transfers(sim, 1)
    _, token = page(sim)
    sim.fault("a", kind="repeat_change", where="previous_page")
    body, same = page(sim, iteration_token=token)
    assert [t["id"] for t in body] == ids  # a non-empty page whose next token is the same
    assert same == token
    assert page(sim, iteration_token=token) == ([], token)


def test_repeat_change_twice_on_one_page(sim):
    ids = quick_transfers(sim, 3)
    sim.fault("a", kind="repeat_change", where="same_page")
    body, token = page(sim)
    assert [t["id"] for t in body] == [*ids, ids[0]]
    assert body[3] == body[0]
    assert page(sim, iteration_token=token) == ([], token)
    sim.fault("a", kind="repeat_change", where="same_page")
    full, _ = page(sim, count=3)  # the repeat takes a place: the page stays within count
    assert [t["id"] for t in full] == [ids[0], ids[1], ids[0]]


def test_restart_switch_renumbers_the_cursor_while_transfers_keep_running(sim, wait_for):
    (done,) = quick_transfers(sim, 1)
    data = sim.random_file("a", "slow.bin", 300_000)
    spec = sim.upload_spec("b")
    running = sim.start("a", spec, ["slow.bin"], target_rate_kbps=200)  # would take 12 s
    wait_for(lambda: sim.transfer("a", running)["bytes_transferred"] > 0)
    _, old_token = page(sim)
    sim.fault("a", kind="restart", endpoint="GET /ops/transfers")
    response = sim.client("a").get("/ops/transfers", params={"iteration_token": old_token})
    assert response.status_code == 400  # the node restarted before it served this request
    assert response.json() == INVALID_TOKEN
    assert sim.client("a").get(f"/ops/transfers/{done}").status_code == 404
    before = sim.transfer("a", running)
    assert before["status"] == "running"
    body, new_token = page(sim)
    assert new_token > old_token
    assert done not in [t["id"] for t in body]
    wait_for(lambda: sim.transfer("a", running)["bytes_transferred"] > before["bytes_transferred"])
    wait_for(lambda: running in [t["id"] for t in page(sim, iteration_token=new_token)[0]])
    sim.client("a").put(f"/ops/transfers/{running}", json={"target_rate_kbps": 0})
    assert sim.wait("a", running)["status"] == "completed"
    assert (sim.docroot("b") / "Upload/slow.bin").read_bytes() == data
    assert len(sim.admin("a").get("/admin/transfers").json()) == 1


def test_restart_switch_after_the_answer_makes_its_token_stale(sim):
    quick_transfers(sim, 1)
    sim.fault("a", kind="restart", endpoint="GET /ops/transfers", after_effect=True)
    body, token = page(sim)  # served before the restart
    assert len(body) == 1
    response = sim.client("a").get("/ops/transfers", params={"iteration_token": token})
    assert (response.status_code, response.json()) == (400, INVALID_TOKEN)
    assert page(sim)[0] == []  # the ended transfer was forgotten


def test_restart_keeping_history_renumbers_the_cursor_and_keeps_ended_records(sim):
    (done,) = quick_transfers(sim, 1)
    _, old_token = page(sim)
    sim.fault("a", kind="restart", endpoint="GET /ops/transfers", keep_history=True)
    response = sim.client("a").get("/ops/transfers", params={"iteration_token": old_token})
    assert (response.status_code, response.json()) == (400, INVALID_TOKEN)
    assert sim.transfer("a", done)["status"] == "completed"  # still readable by id
    body, new_token = page(sim)
    assert new_token > old_token
    assert [t["id"] for t in body] == [done]  # logged again in the new epoch
    assert page(sim, iteration_token=new_token)[0] == []


def test_admin_restart_keeps_history_when_asked(sim):
    (done,) = quick_transfers(sim, 1)
    kept = sim.admin("a").post("/admin/restart", json={"keep_history": True})
    assert (kept.status_code, kept.json()["forgotten"]) == (200, [])
    assert sim.transfer("a", done)["status"] == "completed"
    assert sim.admin("a").post("/admin/restart").status_code == 200
    assert sim.client("a").get(f"/ops/transfers/{done}").status_code == 404
