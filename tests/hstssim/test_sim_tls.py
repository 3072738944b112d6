"""A node serving its API over HTTPS (the data plane stays plain TCP)."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trustme

from hstssim.cluster import SimCluster
from hstssim.config import NodeConfig


@pytest.fixture
def tls_cluster(tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(cert)
    leaf.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)
    configs = [
        NodeConfig(name=name, docroot=tmp_path / name, tls_cert=cert, tls_key=key)
        for name in ("node-a", "node-b")
    ]
    with SimCluster.start(configs) as running:
        yield running, ssl.create_default_context(cafile=str(ca_file))


def test_https_api_and_transfer(tls_cluster):
    cluster, context = tls_cluster
    a, b = cluster["node-a"], cluster["node-b"]
    assert a.api_url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(a.api_url + "/ping")  # the test CA is not trusted by default
    (a.config.docroot / "f.txt").write_bytes(b"over tls")
    with (
        httpx.Client(verify=context, auth=(b.config.node_user, b.config.node_password)) as to_b,
        httpx.Client(verify=context, auth=(a.config.node_user, a.config.node_password)) as to_a,
    ):
        assert to_a.get(a.api_url + "/ping").status_code == 200
        request = {"transfer_request": {"paths": [{"destination": "/in"}]}}
        setup = to_b.post(b.api_url + "/files/upload_setup", json={"transfer_requests": [request]})
        spec = setup.json()["transfer_specs"][0]["transfer_spec"]
        spec = {k: v for k, v in spec.items() if v is not None}
        spec["paths"] = [{"source": "f.txt"}]
        transfer_id = to_a.post(a.api_url + "/ops/transfers", json=spec).json()["id"]
        for _ in range(500):
            transfer = to_a.get(f"{a.api_url}/ops/transfers/{transfer_id}").json()
            if transfer["status"] == "completed":
                break
        assert transfer["status"] == "completed"
        link = to_a.get(a.api_url + "/ops/transfers").headers["link"]
        assert link.startswith(f"<{a.api_url}/ops/transfers?iteration_token=")
    assert (b.config.docroot / "in/f.txt").read_bytes() == b"over tls"
