"""NodeClient: typed calls to one HSTS node's API over an injected httpx.Client."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from orchestrator.domain.nodes import BasicAuth, NodeConnection
from orchestrator.domain.transfers import (
    DownloadRequest,
    FeedPage,
    FileEntry,
    NodeInfo,
    TransferFile,
    TransferSnapshot,
    TransferSpec,
    TransferStatus,
    UploadRequest,
)
from orchestrator.errors import (
    NodeConfigurationError,
    NodeError,
    NodeNotFound,
    NodeOutcomeUnknown,
    NodeProtocolError,
    TransferSetupError,
)
from orchestrator.nodeapi.errors import parse_body, raise_for_answer, transport_error
from orchestrator.nodeapi.observe import CallObserver, NodeCall, error_kind
from orchestrator.nodeapi.paging import ShortPageRule, follow_pages, next_iteration_token
from orchestrator.nodeapi.wire import (
    WireBrowse,
    WireInfo,
    WirePathList,
    WireSetupResponse,
    WireTransfer,
)

log = logging.getLogger(__name__)

View = Literal["id", "short_summary", "summary", "full"]
Direction = Literal["send", "receive"]
RatePolicy = Literal["low", "fair", "high", "fixed"]
_BY_ID = "/ops/transfers/{id}"  # the route template observers see for one transfer's path


class FeedQuery(TypedDict, total=False):
    """Filters of GET /ops/transfers (node-api.md §4.1) and the client's page limit."""

    active_only: bool | None
    tag: str | None
    view: View
    count: int | None
    direction: Direction | None
    after_time: datetime | None
    max_pages: int


def build_http_client(conn: NodeConnection, *, max_connections: int = 20) -> httpx.Client:
    """A pooled httpx.Client for one node: auth headers, TLS trust and timeouts set."""
    headers = {"Accept": "application/json"}
    auth: httpx.Auth | None = None
    if isinstance(conn.auth, BasicAuth):
        auth = httpx.BasicAuth(conn.auth.username, conn.auth.password.get_secret_value())
    else:
        headers["Authorization"] = f"Bearer {conn.auth.token.get_secret_value()}"
        headers["X-Aspera-AccessKey"] = conn.auth.access_key_id
    timeouts = conn.timeouts
    return httpx.Client(
        base_url=conn.url,
        auth=auth,
        headers=headers,
        verify=tls_verification(conn),
        timeout=httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=10),
        follow_redirects=False,
    )


def tls_verification(conn: NodeConnection) -> ssl.SSLContext | bool:
    """Verification on by default; the node's own CA bundle if given; off only when asked.

    A CA bundle that cannot be read or holds no certificate is the registry entry's fault:
    NodeConfigurationError (not retryable), never an OSError or ssl.SSLError.
    """
    if conn.insecure:
        return False
    if conn.ca_bundle is not None:
        try:
            return ssl.create_default_context(cafile=str(conn.ca_bundle))
        except FileNotFoundError:
            why = "no such file on this host"
        except PermissionError:
            why = "this process may not read it"
        except (OSError, ssl.SSLError) as exc:
            detail = getattr(exc, "reason", None) or getattr(exc, "strerror", None)
            why = f"not a PEM CA bundle ({detail or type(exc).__name__})"
        raise NodeConfigurationError(
            f"the node's ca_bundle {str(conn.ca_bundle)!r} cannot be used: {why}; "
            "change the node's ca_bundle",
            node=conn.name,
            field="ca_bundle",
        )
    return True


class NodeClient:
    """The Node API of one HSTS node; returns domain objects, raises orchestrator.errors only."""

    def __init__(
        self, http: httpx.Client, *, node: str = "node", observer: CallObserver | None = None
    ) -> None:
        self._http = http
        self.node = node
        self._observer = observer
        # A node that caps its feed pages below the `count` asked for must not have each of
        # its full pages taken for "caught up"; what its pages showed so far is kept here.
        self._short_pages = ShortPageRule()

    @classmethod
    def connect(cls, conn: NodeConnection, *, observer: CallObserver | None = None) -> NodeClient:
        """A client with its own pooled httpx.Client built from a NodeConnection."""
        return cls(build_http_client(conn), node=conn.name, observer=observer)

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        route: str | None = None,
    ) -> tuple[httpx.Response, Any]:
        """One request; ``route`` is the path's template when the path holds an id."""
        started = time.perf_counter()
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            error = transport_error(exc, node=self.node, operation=operation)
            self._observe(method, route or path, None, time.perf_counter() - started, error)
            raise error from None
        seconds = time.perf_counter() - started
        body = parse_body(response)
        try:
            raise_for_answer(response, body, node=self.node, operation=operation)
        except NodeError as exc:
            self._observe(method, route or path, response.status_code, seconds, exc)
            raise
        self._observe(method, route or path, response.status_code, seconds, None)
        log.debug("%s %s -> %s", method, path, response.status_code)
        return response, body

    def _observe(
        self, method: str, route: str, status: int | None, seconds: float, exc: NodeError | None
    ) -> None:
        """Tell the observer, if any; its failure never fails the call."""
        if self._observer is None:
            return
        kind = error_kind(exc) if exc is not None else None
        call = NodeCall(self.node, method, route, status, seconds, kind)
        try:
            self._observer(call)
        except Exception:
            log.debug("the node call observer failed", exc_info=True)

    def _protocol_error(self, operation: str, problem: object) -> NodeProtocolError:
        return NodeProtocolError(
            f"unexpected answer: {str(problem)[:300]}", node=self.node, operation=operation
        )

    # -- node ----------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /ping: succeeds when the node's API answers."""
        self._call("GET", "/ping", "ping")

    def info(self) -> NodeInfo:
        """GET /info: version, node id, transfer user, activity logging, capabilities."""
        _, body = self._call("GET", "/info", "info")
        try:
            return WireInfo.model_validate(body).to_info()
        except ValidationError as exc:
            raise self._protocol_error("info", exc) from None

    # -- authorisation ---------------------------------------------------------------------

    def upload_setup(self, requests: Sequence[UploadRequest]) -> list[TransferSpec | NodeError]:
        """POST /files/upload_setup: one spec (with token) or one error per request, in order."""
        items = [
            {
                "transfer_request": _drop_none(
                    {
                        "paths": [{}],
                        "destination_root": r.destination_root,
                        "remote_host": r.remote_host,
                        "token_life_seconds": r.token_life_seconds,
                        "tags": r.tags,
                    }
                )
            }
            for r in requests
        ]
        results = self._setup("upload_setup", items)
        filled: list[TransferSpec | NodeError] = []
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, TransferSpec) and not result.destination_root:
                # The token binds the destination we asked for; say it in the spec too.
                result = result.model_copy(update={"destination_root": request.destination_root})
            filled.append(result)
        return filled

    def upload_setup_one(self, request: UploadRequest) -> TransferSpec:
        """upload_setup for one request; its per-item error is raised."""
        (result,) = self.upload_setup([request])
        if isinstance(result, NodeError):
            raise result
        return result

    def download_setup(self, requests: Sequence[DownloadRequest]) -> list[TransferSpec | NodeError]:
        """POST /files/download_setup: one spec or one error per request, in order."""
        items = [
            {
                "transfer_request": _drop_none(
                    {
                        "paths": [p.model_dump(exclude_none=True) for p in r.sources],
                        "source_root": r.source_root,
                        "remote_host": r.remote_host,
                        "token_life_seconds": r.token_life_seconds,
                    }
                )
            }
            for r in requests
        ]
        return self._setup("download_setup", items)

    def _setup(self, kind: str, items: list[dict[str, Any]]) -> list[TransferSpec | NodeError]:
        operation = kind
        _, body = self._call("POST", f"/files/{kind}", operation, json={"transfer_requests": items})
        try:
            parsed = WireSetupResponse.model_validate(body)
        except ValidationError as exc:
            raise self._protocol_error(operation, exc) from None
        if len(parsed.transfer_specs) != len(items):
            raise self._protocol_error(
                operation, f"{len(parsed.transfer_specs)} specs for {len(items)} requests"
            )
        results: list[TransferSpec | NodeError] = []
        for index, item in enumerate(parsed.transfer_specs):
            error = item.item_error()
            if error is not None:
                results.append(
                    TransferSetupError(
                        error.text() or "the node refused this transfer request",
                        node=self.node,
                        operation=f"{operation}[{index}]",
                        status=error.code or None,
                        code=error.code or None,
                        reason=error.reason,
                    )
                )
                continue
            try:
                results.append(TransferSpec.model_validate(item.transfer_spec))
            except ValidationError as exc:
                results.append(self._protocol_error(f"{operation}[{index}]", _fields(exc)))
        return results

    # -- transfers -----------------------------------------------------------------------

    def start_transfer(self, spec: TransferSpec) -> str:
        """POST /ops/transfers with a bare transfer spec; returns the node's transfer id.

        Not idempotent: NodeOutcomeUnknown means the transfer may exist (look it up by tag).
        """
        _, body = self._call("POST", "/ops/transfers", "start_transfer", json=spec.to_body())
        remote_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(remote_id, str) or not remote_id:
            raise NodeOutcomeUnknown(
                "the node accepted the transfer but sent no id",
                node=self.node,
                operation="start_transfer",
            )
        return remote_id

    def get_transfer(self, remote_id: str) -> TransferSnapshot:
        """GET /ops/transfers/{id}; an empty 200 gives status UNKNOWN (node-api.md §4.2)."""
        _, body = self._call(
            "GET", f"/ops/transfers/{_segment(remote_id)}", "get_transfer", route=_BY_ID
        )
        if body is None or body == {}:
            return TransferSnapshot(remote_id=remote_id, status=TransferStatus.UNKNOWN)
        try:
            return WireTransfer.model_validate(body).to_snapshot()
        except ValidationError as exc:
            raise self._protocol_error("get_transfer", _fields(exc)) from None

    def transfer_files(self, remote_id: str) -> list[TransferFile]:
        """GET /ops/transfers/{id} without a view: the transfer's files[] (node-api.md §5.1),
        as many as the node's own caps let it report."""
        _, body = self._call(
            "GET", f"/ops/transfers/{_segment(remote_id)}", "transfer_files", route=_BY_ID
        )
        if body is None or body == {}:
            return []
        try:
            files = WireTransfer.model_validate(body).files or []
        except ValidationError as exc:
            raise self._protocol_error("transfer_files", _fields(exc)) from None
        return [f.to_file() for f in files]

    def iter_transfer_pages(
        self,
        iteration_token: str | None = None,
        *,
        active_only: bool | None = None,
        tag: str | None = None,
        view: View = "summary",
        count: int | None = None,
        direction: Direction | None = None,
        after_time: datetime | None = None,
        max_pages: int = 100,
    ) -> Iterator[FeedPage]:
        """GET /ops/transfers page by page; each page carries the cursor to save after it."""
        params: dict[str, str] = {}
        if active_only is not None:
            params["active_only"] = "true" if active_only else "false"
        if tag:
            params["tag"] = tag
        if view != "full":
            params["view"] = view
        if count is not None:
            params["count"] = str(count)
        if direction:
            params["direction"] = direction
        if after_time is not None:
            params["after_time"] = after_time.strftime("%Y-%m-%dT%H:%M:%SZ")

        def fetch(token: str | None) -> tuple[list[TransferSnapshot], str | None]:
            query = dict(params)
            if token is not None:
                query["iteration_token"] = token
            response, body = self._call("GET", "/ops/transfers", "list_transfers", params=query)
            transfers = self._transfers(body)
            self._short_pages.saw(t.remote_id for t in transfers)
            return transfers, next_iteration_token(response.headers.get("link"))

        self._short_pages.begin()
        for page in follow_pages(
            fetch,
            iteration_token,
            max_pages=max_pages,
            page_size=count,
            may_hold_more=self._short_pages.may_hold_more,
        ):
            yield FeedPage(transfers=tuple(page.items), next_token=page.token)

    def list_transfers(
        self, iteration_token: str | None = None, **query: Unpack[FeedQuery]
    ) -> FeedPage:
        """Follow the change feed until caught up: every transfer seen and the last cursor."""
        seen: dict[str, TransferSnapshot] = {}
        token = iteration_token
        for page in self.iter_transfer_pages(iteration_token, **query):
            for transfer in page.transfers:
                seen.pop(transfer.remote_id, None)
                seen[transfer.remote_id] = transfer  # a later copy is the newer state
            token = page.next_token
        return FeedPage(transfers=tuple(seen.values()), next_token=token)

    def _transfers(self, body: Any) -> list[TransferSnapshot]:
        if body is None:
            return []
        if not isinstance(body, list):
            raise self._protocol_error("list_transfers", "the body is not a JSON array")
        try:
            return [WireTransfer.model_validate(item).to_snapshot() for item in body]
        except ValidationError as exc:
            raise self._protocol_error("list_transfers", _fields(exc)) from None

    def find_transfers_by_tag(
        self, key: str, value: str, *, since: str | None = None
    ) -> list[TransferSnapshot]:
        """Transfers whose tag ``key`` (dotted) equals ``value``: from the node's whole log, or
        those logged after the iteration token ``since`` (``InvalidIterationToken`` when the
        node no longer accepts it)."""
        feed = self.list_transfers(since, tag=f"{key}={value}", view="summary")
        return [t for t in feed.transfers if str(t.tag(key)) == value]

    def modify_transfer(
        self,
        remote_id: str,
        *,
        status: Literal["paused", "running", "canceled"] | None = None,
        target_rate_kbps: int | None = None,
        min_rate_kbps: int | None = None,
        rate_policy: RatePolicy | None = None,
    ) -> None:
        """PUT /ops/transfers/{id}: pause, resume, cancel, or change the rate (§4.3)."""
        body = _drop_none(
            {
                "status": status,
                "target_rate_kbps": target_rate_kbps,
                "min_rate_kbps": min_rate_kbps,
                "rate_policy": rate_policy,
            }
        )
        if not body:
            raise ValueError("modify_transfer needs a status or a rate to change")
        path = f"/ops/transfers/{_segment(remote_id)}"
        self._call("PUT", path, "modify_transfer", json=body, route=_BY_ID)

    def pause_transfer(self, remote_id: str) -> None:
        """Pause a running transfer."""
        self.modify_transfer(remote_id, status="paused")

    def resume_transfer(self, remote_id: str) -> None:
        """Resume a paused transfer."""
        self.modify_transfer(remote_id, status="running")

    def cancel_transfer(self, remote_id: str) -> None:
        """Cancel with the HTTP method CANCEL, never DELETE (node-api.md §4.4)."""
        path = f"/ops/transfers/{_segment(remote_id)}"
        self._call("CANCEL", path, "cancel_transfer", route=_BY_ID)

    # -- files ---------------------------------------------------------------------------

    def browse(self, path: str, *, page_size: int = 1000, limit: int = 100_000) -> list[FileEntry]:
        """POST /files/browse, paged with ``skip`` until ``total_count`` (§7.3)."""
        entries: list[FileEntry] = []
        while len(entries) < limit:
            request = {"path": path, "count": page_size, "skip": len(entries), "sort": "path"}
            _, body = self._call("POST", "/files/browse", "browse", json=request)
            try:
                page = WireBrowse.model_validate(body)
            except ValidationError as exc:
                raise self._protocol_error("browse", _fields(exc)) from None
            entries.extend(item.to_entry() for item in page.items)
            if not page.items or len(entries) >= page.total_count:
                break
        return entries

    def files_info(self, paths: Sequence[str]) -> list[FileEntry | NodeError]:
        """POST /files/info: an entry or a per-path error for each path, in order."""
        body = {"paths": [{"path": p} for p in paths]}
        _, answer = self._call("POST", "/files/info", "files_info", json=body)
        try:
            parsed = WirePathList.model_validate(answer)
        except ValidationError as exc:
            raise self._protocol_error("files_info", _fields(exc)) from None
        results: list[FileEntry | NodeError] = []
        for entry in parsed.paths:
            if entry.error is not None:
                results.append(
                    NodeNotFound(
                        f"{entry.path}: {entry.error.text()}",
                        node=self.node,
                        operation="files_info",
                        status=entry.error.code or None,
                        code=entry.error.code or None,
                    )
                )
            else:
                results.append(entry.to_entry())
        return results


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _segment(remote_id: str) -> str:
    """A transfer id as one URL path segment (ids are node-chosen: never trust their shape)."""
    encoded = quote(remote_id, safe="")
    return encoded.replace(".", "%2E") if set(remote_id) <= {"."} else encoded


def _fields(exc: ValidationError) -> str:
    """Which fields failed to parse, without echoing values (they may hold tokens)."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
