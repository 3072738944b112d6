"""JSON shapes of transfers, sessions and files, as GET /ops/transfers returns them."""

from __future__ import annotations

from typing import Any

from hstssim.model import FileRecord, Precalc, SessionRecord, Transfer

VIEWS = ("id", "short_summary", "summary")
DEFAULT_RETRY_TIMEOUT = 3600


def _precalc(precalc: Precalc | None, enabled: bool) -> dict[str, Any]:
    """Return a precalc object (all zero when precalculation is off)."""
    shown = precalc if (precalc is not None and enabled) else Precalc(status="ready")
    return {
        "enabled": enabled,
        "status": shown.status,
        "bytes_expected": shown.bytes_expected,
        "directories_expected": shown.directories_expected,
        "files_expected": shown.files_expected,
        "files_excluded": 0,
        "files_special": 0,
        "files_failed": 0,
    }


def start_spec(transfer: Transfer) -> dict[str, Any]:
    """Return the normalised start_spec (not the raw POST body)."""
    spec = transfer.spec
    shown: dict[str, Any] = {
        "direction": spec.direction,
        "endpoint": "client",
        "remote_host": spec.remote_host,
        "remote_user": spec.remote_user,
        "source_paths": [pair.source for pair in spec.paths],
        "destination_path": spec.destination_root,
        "fasp_port": spec.fasp_port,
        "ssh_port": spec.ssh_port,
        "token_type": spec.token_type,
        "rate_policy": transfer.rate_policy,
        "target_rate_kbps": transfer.target_rate_kbps,
        "min_rate_kbps": transfer.min_rate_kbps,
        "cipher": spec.cipher,
        "create_dir": spec.create_dir,
        "overwrite_policy": spec.overwrite,
        "resume_policy": spec.resume_policy,
        "precalc_enabled": spec.precalculate_job_size,
    }
    if transfer.tags is not None:
        shown["tags"] = transfer.tags
    if spec.cookie is not None:
        shown["cookie"] = spec.cookie
    return shown


def _retry_timeout(transfer: Transfer) -> int:
    """Return tags.aspera.xfer_retry when given, else the default retry timeout."""
    aspera = (transfer.tags or {}).get("aspera")
    value = aspera.get("xfer_retry") if isinstance(aspera, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return DEFAULT_RETRY_TIMEOUT


def _calc_rate(record: SessionRecord, avg: float) -> float:
    """Return the rate the session is given: its link share, else its target, else its average."""
    share = record.share_kbps
    if share is not None and share != record.target_rate_kbps and not record.end_time_usec:
        return round(share, 2)
    return record.target_rate_kbps or avg


def session(transfer: Transfer, record: SessionRecord, client_node_id: str) -> dict[str, Any]:
    """Return one sessions[] entry."""
    elapsed = record.elapsed_usec()
    seconds = elapsed / 1e6
    avg = round(record.bytes_transferred * 8 / 1000 / seconds, 2) if seconds > 0 else 0.0
    return {
        "id": record.id,
        "client_node_id": client_node_id,
        "server_node_id": record.server_node_id,
        "client_ip_address": record.client_ip_address,
        "server_ip_address": record.server_ip_address,
        "status": record.status,
        "retry_timeout": _retry_timeout(transfer),
        "retry_count": record.retry_count,
        "start_time_usec": record.start_time_usec,
        "end_time_usec": record.end_time_usec,
        "elapsed_usec": elapsed,
        "bytes_transferred": record.bytes_transferred,
        "bytes_written": record.bytes_written,
        "bytes_lost": 0,
        "stalled": False,
        "files_completed": record.files_completed,
        "directories_completed": record.directories_completed,
        "target_rate_kbps": record.target_rate_kbps,
        "min_rate_kbps": record.min_rate_kbps,
        "calc_rate_kbps": _calc_rate(record, avg),
        "network_delay_usec": record.network_delay_usec,
        "avg_rate_kbps": avg,
        "error_code": record.error_code,
        "error_desc": record.error_desc,
        "source_statistics": {
            "args_scan_attempted": record.args_scan,
            "args_scan_completed": record.args_scan,
            "paths_scan_attempted": record.args_scan,
            "paths_scan_failed": 0,
            "paths_scan_skipped": 0,
            "paths_scan_excluded": 0,
            "dirs_scan_completed": record.dirs_planned,
            "files_scan_completed": record.files_planned,
            "dirs_xfer_attempted": record.dirs_planned,
            "dirs_xfer_fail": 0,
            "files_xfer_attempted": record.files_planned,
            "files_xfer_fail": record.files_failed,
            "files_xfer_noxfer": record.files_skipped,
        },
        "precalc": _precalc(record.precalc, transfer.spec.precalculate_job_size),
    }


def file_entry(record: FileRecord) -> dict[str, Any]:
    """Return one files[] entry (both spellings of the error text, as versions differ)."""
    text = record.error_desc or "No error"
    return {
        "id": record.id,
        "path": record.path,
        "start_time_usec": record.start_time_usec,
        "end_time_usec": record.end_time_usec,
        "elapsed_usec": max(
            0, (record.end_time_usec or record.start_time_usec) - record.start_time_usec
        ),
        "status": record.status,
        "error_code": record.error_code,
        "error_desc": text,
        "error_description": text,
        "size": record.size,
        "type": "file",
        "checksum_type": record.checksum_type,
        "checksum": record.checksum,
        "start_byte": record.start_byte,
        "bytes_written": record.bytes_written,
        "session_id": record.session_id,
    }


def transfer(
    record: Transfer,
    client_node_id: str,
    view: str | None = None,
    file_budget: list[int] | None = None,
) -> dict[str, Any]:
    """Return a transfer object for a view ("id", "short_summary", "summary", None: files)."""
    # file_budget holds how many files[] entries the page may still show (max_items).
    if view == "id":
        return {"id": record.id}
    shown: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "start_spec": start_spec(record),
        "sessions": [session(record, s, client_node_id) for s in record.sessions],
        "bytes_transferred": record.bytes_transferred,
        "bytes_written": record.bytes_written,
        "bytes_lost": 0,
        "avg_rate_kbps": record.avg_rate_kbps(),
        "files_completed": record.files_completed,
        "files_skipped": record.files_skipped,
        "directories_completed": len(record.directories),
        "start_time_usec": record.start_time_usec,
        "end_time_usec": record.end_time_usec,
        "elapsed_usec": record.elapsed_usec(),
        "error_code": str(record.error_code) if record.error_code_as_string else record.error_code,
        "error_desc": record.error_desc,
    }
    if record.spec.title is not None:
        shown["title"] = record.spec.title
    if record.precalc is not None:
        precalc = _precalc(record.precalc, True)
        del precalc["enabled"], precalc["files_excluded"]
        shown["precalc"] = precalc
    if view == "short_summary":
        del shown["start_spec"]
    if view is None:
        entries = list(record.files.values())
        if file_budget is not None:
            entries = entries[: max(0, file_budget[0])]
            file_budget[0] -= len(entries)
        shown["files"] = [file_entry(f) for f in entries]
    return shown
