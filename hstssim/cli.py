"""The hstssim command: start N simulated nodes, check they answer, print how to reach them."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from hstssim.cluster import RunningNode, SimCluster
from hstssim.config import NodeConfig
from hstssim.faults import FaultError, parse_fault

EPILOG = """\
examples:
  hstssim --nodes 2 --demo
      two nodes, node-a and node-b, on free ports; sample files in node-a's /outgoing
  hstssim --nodes 2 --base-port 9091 --root /tmp/sim --json
      APIs on 9091 and 9092, data planes on 9191 and 9192, docroots /tmp/sim/node-a and
      /tmp/sim/node-b; one JSON object per node on stdout
  hstssim --tls-cert cert.pem --tls-key key.pem --admin-token s3cret
      HTTPS on the API ports; the same admin token on every node
  XFER_PW=s3cret hstssim --ssh-password-env XFER_PW --ssh-authorized-key id_ed25519.pub
      every node also accepts SSH logins of its transfer user xfer on its data port (its
      "SSH port", printed as ssh_port): a destination reached without its Node API
  hstssim --fault '{"kind":"http_error","endpoint":"POST /ops/transfers","status":503,"count":2}'
      the first two POST /ops/transfers on each node answer 503
  hstssim --nodes 3 --link node-a:node-b=100000 --max-sessions 2
      the link node-a -> node-b carries 100 Mbps, shared by the transfers on it (by
      rate_policy: fixed first, then high:fair:low as 4:2:1); each node runs 2 sessions at
      once and queues the others (status waiting)
  hstssim --fault '{"kind":"spec_echo","count":0}' \\
          --fault '{"kind":"short_page","size":2,"count":0}'
      every node answers POST /ops/transfers with a spec echo, and feed pages of 2 at most

then, for a node printed with api http://127.0.0.1:PORT and user node_admin / PASSWORD:
  curl -u node_admin:PASSWORD http://127.0.0.1:PORT/info
  curl -H 'X-Admin-Token: TOKEN' http://127.0.0.1:PORT/admin/counters
  curl -H 'X-Admin-Token: TOKEN' -d '{"kind":"reject_tokens"}' http://127.0.0.1:PORT/admin/faults
  curl -H 'X-Admin-Token: TOKEN' -X PUT http://127.0.0.1:PORT/admin/network \\
       -d '{"links":[{"from":"node-a","to":"node-b","capacity_kbps":50000}]}'
  curl -H 'X-Admin-Token: TOKEN' http://127.0.0.1:PORT/admin/foreign_transfers \\
       -d '{"peer":"node-b","target_rate_kbps":20000}'     another client's transfer, until canceled

fault kinds: fail_transfers, failed_code_zero, error_code_string, drop_connection,
reject_tokens, spec_echo, invalid_iteration_token, short_page, repeat_change, and per endpoint
("METHOD /route/template" or "*"): http_error, hang, empty_200, empty_error, close_connection,
restart, content_type (see hstssim/README.md; http_error with "echo_request":true repeats
the request in its error text). count 0 makes a fault fire for ever.
Stop with Ctrl-C or SIGTERM.
"""


def node_name(index: int) -> str:
    """Return node-a, node-b, ... node-z, node-27, ..."""
    return f"node-{chr(ord('a') + index)}" if index < 26 else f"node-{index + 1}"


def _fault(text: str) -> dict[str, Any]:
    """Parse and check one --fault value."""
    try:
        data = json.loads(text)
        parse_fault(data)
    except (ValueError, FaultError) as exc:
        raise argparse.ArgumentTypeError(f"bad fault {text!r}: {exc}") from exc
    assert isinstance(data, dict)
    return data


def _link(text: str) -> tuple[str, str, int]:
    """Parse a FROM:TO=KBPS link capacity."""
    ends, sep, kbps = text.partition("=")
    src, colon, dst = ends.partition(":")
    if not sep or not colon or not src or not dst or src == dst or not kbps.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected FROM:TO=KBPS between two nodes, e.g. node-a:node-b=100000, got {text!r}"
        )
    return src, dst, int(kbps)


def _access_key(text: str) -> tuple[str, str]:
    """Parse an ID:SECRET access key."""
    key_id, sep, secret = text.partition(":")
    if not sep or not key_id or not secret:
        raise argparse.ArgumentTypeError("expected ID:SECRET")
    return key_id, secret


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="hstssim",
        description="Simulated IBM Aspera HSTS nodes: the Node API (upload_setup, "
        "/ops/transfers, ...) plus a real data plane that moves files between nodes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--nodes", type=int, default=2, help="how many nodes to start (default 2)")
    add("--root", type=Path, help="parent of the docroots <root>/<name> (default: a temp dir)")
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--advertise-host", help="remote_host that *_setup answers give (default: --host)")
    add("--base-port", type=int, default=0, help="API ports P, P+1..; data ports P+100..")
    add("--tls-cert", type=Path, help="certificate (PEM) to serve HTTPS on the API ports")
    add("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    add("--admin-token", help="admin API credential for every node (default: random each)")
    add("--node-password", help="node_admin password for every node (default: random each)")
    add("--access-key", type=_access_key, help="ID:SECRET access key for every node")
    add("--demo", action="store_true", help="write sample files into node-a's /outgoing")
    add("--json", action="store_true", help="print one JSON object per node")
    add("--fault", type=_fault, action="append", default=[], help="fault JSON (repeatable)")
    add("--no-activity-logging", action="store_true", help="GET /ops/transfers answers 404")
    add("--retention", type=float, help="seconds ended transfers are kept (default 129600)")
    add("--max-retries", type=int, help="node-side session retries (default 3)")
    add("--retry-delay", type=float, help="seconds between session retries (default 1)")
    add(
        "--ssh-password-env",
        metavar="VAR",
        help="environment variable holding the transfer user's SSH password (every node)",
    )
    add(
        "--ssh-authorized-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="OpenSSH public key file whose private key may log in (repeatable)",
    )
    add("--max-sessions", type=int, help="sessions each node runs at once; more wait (default 20)")
    add(
        "--link",
        type=_link,
        action="append",
        default=[],
        metavar="FROM:TO=KBPS",
        help="capacity of the link FROM -> TO in kbps, shared by its transfers (repeatable; "
        "default: unlimited)",
    )
    add(
        "--inbound-kbps",
        type=int,
        default=0,
        help="each node's total inbound capacity in kbps (default: unlimited)",
    )
    add(
        "--outbound-kbps",
        type=int,
        default=0,
        help="each node's total outbound capacity in kbps (default: unlimited)",
    )
    return parser


def make_configs(args: argparse.Namespace, root: Path) -> list[NodeConfig]:
    """Return one NodeConfig per node from the parsed arguments."""
    configs = []
    for index in range(args.nodes):
        name = node_name(index)
        config = NodeConfig(
            name=name,
            docroot=root / name,
            host=args.host,
            advertise_host=args.advertise_host,
            api_port=args.base_port + index if args.base_port else 0,
            fasp_port=args.base_port + 100 + index if args.base_port else 0,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            activity_logging=not args.no_activity_logging,
            faults=list(args.fault),
        )
        if args.admin_token:
            config.admin_token = args.admin_token
        if args.node_password:
            config.node_password = args.node_password
        if args.access_key:
            config.access_keys = dict([args.access_key])
        if args.retention is not None:
            config.retention_seconds = args.retention
        if args.max_retries is not None:
            config.max_retries = args.max_retries
        if args.retry_delay is not None:
            config.retry_delay_seconds = args.retry_delay
        if args.ssh_password_env:
            config.ssh_password = os.environ.get(args.ssh_password_env) or None
        config.ssh_authorized_keys = [
            line
            for path in args.ssh_authorized_key
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        if args.max_sessions is not None:
            config.max_concurrent_sessions = args.max_sessions
        config.inbound_kbps = args.inbound_kbps
        config.outbound_kbps = args.outbound_kbps
        config.links = {dst: kbps for src, dst, kbps in args.link if src == name}
        configs.append(config)
    return configs


def _pattern(size: int, seed: str) -> bytes:
    """Return size deterministic pseudo-random bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def write_demo_files(docroot: Path) -> list[Path]:
    """Write sample files of different sizes (and a subdirectory) under /outgoing."""
    samples = {
        "outgoing/readme.txt": b"Sample files written by hstssim --demo.\n" * 20,
        "outgoing/empty.dat": b"",
        "outgoing/medium.bin": _pattern(256 * 1024, "medium"),
        "outgoing/large.bin": _pattern(4 * 1024 * 1024, "large"),
        "outgoing/reports/2024/summary.csv": b"month,bytes\n" + b"01,1024\n" * 50,
        "outgoing/reports/notes.txt": b"notes\n",
    }
    written = []
    for rel, content in samples.items():
        path = docroot / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def check_node(node: RunningNode) -> bool:
    """Tell whether the node answers GET /ping and an authenticated GET /info."""
    auth = (node.config.node_user, node.config.node_password)
    # Loopback self-check of our own server, whose certificate may be self-signed.
    with httpx.Client(base_url=node.api_url, verify=False, timeout=5.0) as client:  # noqa: S501
        try:
            ping = client.get("/ping")
            info = client.get("/info", auth=auth)
        except httpx.HTTPError:
            return False
    return ping.status_code == 200 and info.status_code == 200 and "node_id" in info.json()


def node_summary(node: RunningNode, answers: bool) -> dict[str, Any]:
    """Return what a user needs to reach one node."""
    key_id, secret = node.config.first_access_key
    return {
        "name": node.name,
        "api_url": node.api_url,
        "api_port": node.api_port,
        "fasp_port": node.fasp_port,
        "ssh_port": node.fasp_port,  # SSH logins are served on the data port
        "ssh_fingerprint": node.config.ssh_fingerprint,
        "host": node.host,
        "docroot": str(node.config.docroot),
        "node_user": node.config.node_user,
        "node_password": node.config.node_password,
        "access_key_id": key_id,
        "access_key_secret": secret,
        "admin_token": node.admin_token,
        "node_id": node.config.node_id,
        "answers": answers,
    }


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    """Print one node's summary, as text or as one JSON line."""
    if as_json:
        print(json.dumps(summary), flush=True)
        return
    print(
        f"{summary['name']}\n"
        f"  api:         {summary['api_url']}\n"
        f"  data port:   {summary['fasp_port']}\n"
        f"  docroot:     {summary['docroot']}\n"
        f"  node user:   {summary['node_user']} / {summary['node_password']}\n"
        f"  access key:  {summary['access_key_id']} / {summary['access_key_secret']}\n"
        f"  admin token: {summary['admin_token']}\n"
        f"  answers:     {'yes' if summary['answers'] else 'NO'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    names = {node_name(index) for index in range(args.nodes)}
    for src, dst, _ in args.link:
        if not {src, dst} <= names:
            parser.error(f"--link {src}:{dst}: nodes are {', '.join(sorted(names))}")
    if args.max_sessions is not None and args.max_sessions < 1:
        parser.error("--max-sessions must be at least 1")
    if args.inbound_kbps < 0 or args.outbound_kbps < 0:
        parser.error("--inbound-kbps and --outbound-kbps take kbps, 0 (unlimited) or more")
    temp_root = args.root is None
    root = Path(tempfile.mkdtemp(prefix="hstssim-")) if temp_root else args.root
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster = SimCluster.start(make_configs(args, root))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"hstssim: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if args.demo:
            write_demo_files(cluster.nodes[0].config.docroot)
        healthy = True
        for node in cluster:
            answers = check_node(node)
            healthy = healthy and answers
            print_summary(node_summary(node, answers), args.json)
        if not args.json:
            print("running; Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        cluster.stop()
        if temp_root:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if healthy else 1
