"""The hstssim command as a user runs it: a subprocess printing JSON lines, stopped by signal."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from hstssim.cli import build_parser, main, make_configs, node_name
from hstssim.cluster import SimCluster


def read_lines(proc: subprocess.Popen, count: int, timeout: float = 20.0) -> list[str]:
    """Read count stdout lines from a running process, failing after timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        try:
            got.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"only {len(got)} lines; stderr: {proc.stderr.read()}")
    return got


@pytest.fixture
def running_cli(tmp_path):
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "hstssim", "--nodes", "2", "--json", "--demo"),
            *("--root", str(tmp_path), "--retention", "120"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_cli_prints_reachable_nodes_that_transfer_and_stops_on_sigint(running_cli, tmp_path):
    nodes = [json.loads(line) for line in read_lines(running_cli, 2)]
    assert [n["name"] for n in nodes] == ["node-a", "node-b"]
    for node in nodes:
        assert node["answers"] is True
        assert node["docroot"] == str(tmp_path / node["name"])
        assert httpx.get(node["api_url"] + "/ping").status_code == 200
        auth = (node["node_user"], node["node_password"])
        info = httpx.get(node["api_url"] + "/info", auth=auth).json()
        assert info["node_id"] == node["node_id"]
        key = (node["access_key_id"], node["access_key_secret"])
        assert httpx.get(node["api_url"] + "/info", auth=key).status_code == 200
        admin = {"X-Admin-Token": node["admin_token"]}
        settings = httpx.get(node["api_url"] + "/admin/settings", headers=admin).json()
        assert settings["retention_seconds"] == 120
    assert (tmp_path / "node-a/outgoing/large.bin").stat().st_size == 4 * 1024 * 1024
    assert (tmp_path / "node-a/outgoing/empty.dat").stat().st_size == 0
    assert (tmp_path / "node-a/outgoing/reports/2024/summary.csv").exists()

    a, b = nodes
    to_a = httpx.Client(base_url=a["api_url"], auth=(a["node_user"], a["node_password"]))
    to_b = httpx.Client(base_url=b["api_url"], auth=(b["node_user"], b["node_password"]))
    request = {"transfer_request": {"paths": [{"destination": "/in"}]}}
    setup = to_b.post("/files/upload_setup", json={"transfer_requests": [request]}).json()
    spec = setup["transfer_specs"][0]["transfer_spec"]
    spec = {key: value for key, value in spec.items() if value is not None}
    spec["paths"] = [{"source": "/outgoing"}]
    transfer_id = to_a.post("/ops/transfers", json=spec).json()["id"]
    deadline = time.monotonic() + 15
    while (status := to_a.get(f"/ops/transfers/{transfer_id}").json()["status"]) not in (
        "completed",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    to_a.close()
    to_b.close()
    assert status == "completed"
    sent = (tmp_path / "node-a/outgoing/large.bin").read_bytes()
    assert (tmp_path / "node-b/in/outgoing/large.bin").read_bytes() == sent

    running_cli.send_signal(signal.SIGINT)
    assert running_cli.wait(timeout=15) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(a["api_url"] + "/ping", timeout=1)


def test_cli_arms_start_up_faults_on_every_node(tmp_path):
    args = build_parser().parse_args(["--fault", '{"kind":"reject_tokens","count":0}'])
    configs = make_configs(args, tmp_path)
    assert [c.faults for c in configs] == [[{"kind": "reject_tokens", "count": 0}]] * 2
    with SimCluster.start(configs) as cluster:
        for node in cluster:
            admin = {"X-Admin-Token": node.admin_token}
            faults = httpx.get(node.api_url + "/admin/faults", headers=admin).json()
            assert [f["kind"] for f in faults] == ["reject_tokens"]


def test_cli_arms_every_new_switch_kind(tmp_path):
    switches = [
        {"kind": "content_type", "endpoint": "POST /files/upload_setup"},
        {"kind": "spec_echo", "count": 0},
        {"kind": "error_code_string", "count": 0},
        {"kind": "short_page", "size": 2, "count": 0},
        {"kind": "repeat_change", "where": "same_page"},
        {"kind": "restart", "endpoint": "GET /ops/transfers"},
        {"kind": "close_connection", "endpoint": "POST /ops/transfers", "after_effect": True},
        {"kind": "http_error", "endpoint": "*", "status": 503, "count": 3},
        {"kind": "hang", "endpoint": "*", "seconds": 0.5},
    ]
    argv = [arg for switch in switches for arg in ("--fault", json.dumps(switch))]
    configs = make_configs(build_parser().parse_args(argv), tmp_path)
    with SimCluster.start(configs[:1]) as cluster:
        (node,) = cluster
        admin = {"X-Admin-Token": node.admin_token}
        armed = httpx.get(node.api_url + "/admin/faults", headers=admin).json()
    assert [f["kind"] for f in armed] == [s["kind"] for s in switches]


def test_cli_help_teaches_with_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "--fault" in out
    assert "X-Admin-Token" in out


def test_cli_base_port_layout_and_names(tmp_path):
    args = build_parser().parse_args(
        [
            *("--nodes", "3", "--base-port", "19091", "--admin-token", "t"),
            *("--no-activity-logging", "--host", "0.0.0.0", "--advertise-host", "sim.example"),
        ]
    )
    configs = make_configs(args, tmp_path)
    assert {(c.host, c.advertise_host) for c in configs} == {("0.0.0.0", "sim.example")}
    assert [c.name for c in configs] == ["node-a", "node-b", "node-c"]
    assert [c.api_port for c in configs] == [19091, 19092, 19093]
    assert [c.fasp_port for c in configs] == [19191, 19192, 19193]
    assert {c.admin_token for c in configs} == {"t"}
    assert not any(c.activity_logging for c in configs)
    assert len({c.node_password for c in configs}) == 3
    assert node_name(26) == "node-27"


def test_cli_rejects_bad_faults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--fault", '{"kind":"nope"}'])
    assert exit_info.value.code == 2
    assert "bad fault" in capsys.readouterr().err


def test_cli_links_and_session_limit_reach_the_cluster_network(tmp_path):
    argv = ["--link", "node-a:node-b=100000", "--max-sessions", "2", "--inbound-kbps", "500000"]
    configs = make_configs(build_parser().parse_args(argv), tmp_path)
    assert [c.links for c in configs] == [{"node-b": 100_000}, {}]
    assert {c.max_concurrent_sessions for c in configs} == {2}
    with SimCluster.start(configs) as cluster:
        node = cluster["node-b"]
        admin = {"X-Admin-Token": node.admin_token}
        network = httpx.get(node.api_url + "/admin/network", headers=admin).json()
    assert network["links"] == [{"from": "node-a", "to": "node-b", "capacity_kbps": 100_000}]
    assert network["nodes"]["node-b"] == {"inbound_kbps": 500_000, "outbound_kbps": 0}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--link", "node-a=5"], "FROM:TO=KBPS"),
        (["--link", "node-a:node-z=5"], "nodes are node-a, node-b"),
        (["--max-sessions", "0"], "--max-sessions"),
        (["--outbound-kbps", "-5"], "--outbound-kbps"),
    ],
)
def test_cli_rejects_bad_links_and_limits(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
