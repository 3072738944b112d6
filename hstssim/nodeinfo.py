"""GET /info: the node's identity, version, capabilities and settings."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from typing import Any

from hstssim.context import NodeContext

VERSION = "4.4.6.sim"


def node_info(ctx: NodeContext) -> dict[str, Any]:
    """Return the /info object (shape of OAS446 info-get-200 and the F9 fixture)."""
    config = ctx.config
    return {
        "application": "node",
        "current_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": VERSION,
        "license_expiration_date": "2099-12-31",
        "license_max_rate": "0",
        "os": f"{platform.system()} {platform.release()} (hstssim)",
        "aej_status": "disconnected",
        "async_reporting": "no",
        "transfer_activity_reporting": "yes" if config.activity_logging else "no",
        "transfer_user": config.transfer_user,
        "docroot": f"file:///{config.docroot.resolve()}",
        "node_id": config.node_id,
        "cluster_id": config.cluster_id,
        "acls": [],
        "access_key_configuration_capabilities": {
            "transfer": ["cipher", "policy", "target_rate_cap_kbps", "target_rate_kbps"],
            "server": ["activity_event_logging", "activity_file_event_logging"],
        },
        "capabilities": [
            {"name": "sync", "value": False},
            {"name": "watchfolder", "value": False},
            {"name": "symbolic_links", "value": True},
            {"name": "move_file", "value": False},
            {"name": "move_directory", "value": False},
            {"name": "page", "value": False},
            {"name": "file_id_version", "value": "2.0"},
        ],
        "settings": [
            {"name": "content_protection_required", "value": False},
            {"name": "content_protection_strong_pass_required", "value": False},
            {"name": "ssh_fingerprint", "value": None},
            {"name": "wss_enabled", "value": False},
            {"name": "wss_port", "value": 443},
        ],
    }
