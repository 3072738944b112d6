"""NodeClient over HTTPS: a private CA is trusted only when configured for the node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from hstssim.cluster import RunningNode, SimCluster
from hstssim.config import NodeConfig
from orchestrator.errors import NodeUnreachable
from tests.support.sim import client_for


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_node(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[RunningNode]:
    root = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = root / "node.pem", root / "node.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    config = NodeConfig(
        name="node-tls", docroot=root / "docroot", tls_cert=cert_file, tls_key=key_file
    )
    with SimCluster.start([config]) as cluster:
        yield cluster["node-tls"]


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def test_node_url_is_https(tls_node: RunningNode) -> None:
    assert tls_node.api_url.startswith("https://")


def test_private_ca_bundle_is_trusted(tls_node: RunningNode, ca_file: Path) -> None:
    with client_for(tls_node, ca_bundle=ca_file) as client:
        assert client.info().node_id == tls_node.config.node_id


def test_without_the_ca_the_node_is_refused(tls_node: RunningNode) -> None:
    with client_for(tls_node) as client, pytest.raises(NodeUnreachable) as caught:
        client.info()
    assert "not trusted" in str(caught.value)
    assert not caught.value.retryable, "retrying cannot fix a certificate; a person must"


def test_explicit_insecure_opt_out_connects(tls_node: RunningNode) -> None:
    with client_for(tls_node, insecure=True) as client:
        assert client.info().node_id == tls_node.config.node_id
