"""Public request and response models of the API; secrets never appear in a response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, HttpUrl, Tag, field_validator

from orchestrator.domain.jobs import MAX_BATCH, JobSpec
from orchestrator.domain.nodes import (
    CaBundle,
    NodeChanges,
    NodeSecret,
    NodeUsername,
    RootPath,
    TransferHost,
    plain_base_url,
)
from orchestrator.domain.sshendpoints import SshEndpointRegistration


class JobCreate(JobSpec):
    """A job to run: copy source_paths of source_node into destination_path of destination_node,
    or into each of ``destinations`` (2 to 16: a fan-out, one transfer per destination)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "source_node": "paris",
                    "source_paths": ["media/daily"],
                    "destination_node": "london",
                    "destination_path": "incoming",
                    "options": {"target_rate_kbps": 100000, "overwrite": "diff"},
                    "priority": 0,
                },
                {
                    "source_node": "paris",
                    "source_paths": ["masters/film.mxf"],
                    "destinations": [
                        {"node": "london", "path": "incoming"},
                        {"node": "tokyo", "path": "incoming"},
                        {"node": "nyc", "path": "incoming"},
                    ],
                },
            ]
        },
    )


class JobBatchItem(JobCreate):
    """One job of a batch: the body POST /api/v1/jobs takes, and its own idempotency key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="as the Idempotency-Key header of POST /api/v1/jobs, for this job alone",
    )


class JobBatch(BaseModel):
    """Jobs to queue together: one transaction, one answer per job."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        {
                            "source_node": "paris",
                            "source_paths": ["media/a.mxf"],
                            "destination_node": "london",
                            "destination_path": "incoming",
                            "idempotency_key": "ingest-a",
                        },
                        {
                            "source_node": "paris",
                            "source_paths": ["media/b.mxf"],
                            "destination_node": "london",
                            "destination_path": "incoming",
                            "idempotency_key": "ingest-b",
                        },
                    ]
                }
            ]
        },
    )

    jobs: list[JobBatchItem] = Field(min_length=1, max_length=MAX_BATCH)


class JobBatchResult(BaseModel):
    """What became of one job of a batch (its status is what POST /api/v1/jobs would answer)."""

    index: int = Field(description="the job's place in the request, from 0")
    status: int = Field(
        description="202 queued, 200 already known by its idempotency key, 409 the key was "
        "used with another body or by another token, 422 refused (see field and error)"
    )
    job_id: str | None = None
    state: str | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    field: str | None = Field(default=None, description="the job's field at fault")


class JobBatchOut(BaseModel):
    """The batch's answer: one result per job, in the request's order."""

    queued: int
    known: int
    refused: int
    results: list[JobBatchResult]


class AttemptOut(BaseModel):
    """One node transfer of a job."""

    id: str
    number: int
    remote_id: str | None
    status: str
    bytes_transferred: int
    bytes_expected: int | None
    files_completed: int
    files_expected: int | None
    files_skipped: int
    files_failed: int
    rate_kbps: float | None
    error_code: int | None
    error_text: str | None
    created_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


class JobFileOut(BaseModel):
    """One file of a job's completed transfer, with the checksum its source node reported."""

    attempt: int
    path: str
    size: int
    status: str
    checksum_type: str | None = Field(description='"none" or null: the node reported none')
    checksum: str | None


class JobFileList(BaseModel):
    """A page of a job's stored files."""

    items: list[JobFileOut]
    total: int
    next_offset: int | None


class EventOut(BaseModel):
    """One entry of a job's event log."""

    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    message: str


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    state: str
    source_node: str
    source_paths: list[str]
    destination_node: str
    destination_path: str
    options: dict[str, Any]
    priority: int
    labels: dict[str, str]
    schedule_id: str | None
    attempts: int = Field(description="node transfers tried so far")
    max_attempts: int
    bytes_transferred: int
    bytes_expected: int | None
    files_completed: int
    files_expected: int | None
    files_skipped: int = Field(default=0, description="files already at the destination")
    rate_kbps: float | None
    eta_seconds: float | None = Field(description="time left at the current rate")
    progress: str = Field(
        default="",
        description="what moved, in words (decimal sizes, rates in bits per second), e.g. "
        "'42% · 1.50 MB of 3.60 MB · 3 of 10 files · at 12.0 Mbps' or "
        "'up to date (6 files already there)'",
    )
    waiting_reason: str | None = Field(description="why a queued job waits")
    reason: str | None = Field(description="why the job failed or needs attention")
    error_code: int | None = Field(description="the node's ascp error code")
    error_text: str | None = Field(description="the node's error text")
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    acknowledged_at: datetime | None = Field(
        default=None, description="when a person acknowledged this failure (cleared by a retry)"
    )
    acknowledged_by: str | None = Field(default=None, description="the name of their token")
    mode: str = Field(
        default="push",
        description="push: the source node runs the transfer; pull: the destination node does",
    )
    runs_on: str = Field(
        default="", description="the node that runs (holds) the transfer, e.g. 'node-b' for a pull"
    )
    deadline: datetime | None = Field(default=None, description="when the job must be done by")
    eta: datetime | None = Field(
        default=None,
        description="when the job is expected to end: at submit from the link's measured rate "
        "and the work ahead of it, then from its own rate each poll (deadline jobs before "
        "they run; every job while it runs)",
    )
    at_risk: bool = Field(default=False, description="expected to end after its deadline")
    deadline_missed: bool = Field(default=False, description="it ended after its deadline")
    allocation_note: str | None = Field(
        default=None,
        description="on a link with a budget, while its transfer is on the node: why it runs at "
        "its rate, or why it is paused",
    )
    parent_id: str | None = Field(
        default=None, description="a fan-out destination's part: the job it belongs to"
    )


class DestinationOut(BaseModel):
    """One destination of a fan-out job: its own job (part) and how far it got."""

    node: str
    path: str
    job_id: str = Field(description="the part: an ordinary job with its own attempts")
    state: str
    bytes: int
    files: int
    error: str | None = Field(description="why this destination failed or needs attention")


class JobDetail(JobOut):
    """A job with its attempts and event log (a fan-out job: its destinations)."""

    destinations: list[DestinationOut] = Field(
        default_factory=list, description="a fan-out job's destinations; empty for others"
    )
    attempt_list: list[AttemptOut]
    events: list[EventOut]
    warnings: list[str] = Field(
        default_factory=list,
        description="on submit: what the caller should know, e.g. a deadline the link's "
        "measured rate cannot meet",
    )


class JobList(BaseModel):
    """A page of jobs, newest first."""

    items: list[JobOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class RateChange(BaseModel):
    """New rates for a job's transfer."""

    model_config = ConfigDict(extra="forbid")

    target_rate_kbps: int | None = Field(default=None, ge=1, le=100_000_000)
    min_rate_kbps: int | None = Field(default=None, ge=0, le=100_000_000)


class PriorityChange(BaseModel):
    """A job's new priority (higher is admitted first)."""

    model_config = ConfigDict(extra="forbid")

    priority: int = Field(ge=-100, le=100)


class NodeCreate(BaseModel):
    """A node to register; ``secret`` is stored encrypted and never returned."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["node_api"] = Field(
        default="node_api", description='a node with a Node API; "ssh" for an SSH endpoint'
    )
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_url: HttpUrl = Field(description="the Node API URL, e.g. https://hsts.example.com:9092")
    auth_kind: Literal["node_user", "access_key", "bearer"] = "node_user"
    username: NodeUsername = Field(description="node user or access key id")
    secret: NodeSecret = Field(description="password, access key secret, or bearer token")
    ca_bundle: CaBundle = Field(default=None, description="path of a PEM CA bundle to trust")
    insecure: bool = Field(default=False, description="skip TLS verification (test nodes only)")
    transfer_host: TransferHost = Field(
        default=None, description="address other nodes use to reach this one"
    )
    root_path: RootPath = Field(default="/", description="jobs may only touch this subtree")
    max_outbound: int = Field(default=10, ge=1, le=1000)
    max_inbound: int = Field(default=10, ge=1, le=1000)
    activity_retention_seconds: int = Field(
        default=129600,
        ge=60,
        le=366 * 86400,
        description="how long the node keeps transfer records (its activity_retention)",
    )

    @field_validator("base_url")
    @classmethod
    def _plain_url(cls, url: HttpUrl) -> HttpUrl:
        return plain_base_url(url)


class SshEndpointCreate(SshEndpointRegistration):
    """An SSH endpoint to register: a destination without a Node API, reached by its transfer
    user's password or private key (exactly one; stored encrypted, never returned)."""

    kind: Literal["ssh"]


def _node_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "ssh" if value.get("kind") == "ssh" else "node_api"
    return "ssh" if isinstance(value, SshEndpointCreate) else "node_api"


# The body of POST /api/v1/nodes: a Node API node unless "kind" says "ssh". Validation errors
# carry the tag in their location; the error handler leaves it out of the field it names.
UNION_TAGS = frozenset({"node_api", "ssh"})
AnyNodeCreate = Annotated[
    Annotated[NodeCreate, Tag("node_api")] | Annotated[SshEndpointCreate, Tag("ssh")],
    Discriminator(_node_kind),
]


class NodeUpdate(NodeChanges):
    """Fields of a node to change: each is checked as on registration."""

    model_config = ConfigDict(extra="forbid")


class NodeOut(BaseModel):
    """A registered node (without its secret)."""

    name: str
    base_url: str
    auth_kind: str
    username: str
    ca_bundle: str | None
    insecure: bool
    transfer_host: str | None
    root_path: str
    max_outbound: int
    max_inbound: int
    activity_retention_seconds: int
    enabled: bool
    last_poll_at: datetime | None = None
    last_error: str | None = None
    reachable: bool | None = Field(
        default=None,
        description="whether the node answers, by the newer of its last poll and its last "
        "health check; null until either happened",
    )
    reachable_as_of: datetime | None = Field(default=None, description="when that was learnt")
    checked_at: datetime | None = Field(
        default=None,
        description="the last health check (ping and /info), sources and "
        "destinations alike, every ORCH_NODE_CHECK_SECONDS",
    )
    version: str | None = Field(default=None, description="the node's version, from /info")
    maintenance: str | None = Field(
        default=None,
        description="its maintenance window under way, or the next one within a week, with the "
        "reason (see /api/v1/nodes/{name}/maintenance)",
    )
    check_error: str | None = Field(
        default=None, description="why the last health check found the node unreachable"
    )
    kind: str = Field(
        default="node_api",
        description="node_api, or ssh: an SSH endpoint (a destination with no Node API; its "
        "host is transfer_host, auth_kind says ssh_password or ssh_key, username is its "
        "transfer user)",
    )
    ssh_port: int | None = None
    sshfp: str | None = Field(default=None, description="the pinned host key fingerprint")
    session_limit: int | None = Field(
        default=None,
        description="the transfers the node says (in its /info) it runs at once; null when it "
        "does not say, and then max_outbound is its limit",
    )
    other_clients_transfers: int | None = Field(
        default=None,
        description="transfers the node ran for other clients (waiting or running, without our "
        "tag) when last counted; they count against its session limit",
    )
    counted_at: datetime | None = Field(default=None, description="when they were counted")


class NodeCheckOut(BaseModel):
    """What the node said to ping and /info."""

    name: str
    reachable: bool
    version: str | None = None
    node_id: str | None = None
    transfer_user: str | None = None
    activity_logging: bool | None = Field(
        default=None, description="GET /ops/transfers needs it on"
    )
    capabilities: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class ErrorOut(BaseModel):
    """Every error answer: what went wrong and, for bad input, where."""

    error: str
    field: str | None = None
    detail: list[dict[str, Any]] | None = None


COMMON_ERRORS = {
    400: "the body is not JSON",
    401: "no valid token",
    403: "the token lacks the scope",
    413: "the body is larger than the route accepts (1 MiB)",
    422: "invalid input; says which field",
}


def error_responses(specific: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a router: the errors every route shares, plus its own."""
    described = {**COMMON_ERRORS, **specific}
    return {
        code: {"model": ErrorOut, "description": text} for code, text in sorted(described.items())
    }


class LinkBudgetIn(BaseModel):
    """A link's rate budget, shared live by its transfers."""

    model_config = ConfigDict(extra="forbid")

    mbps: float = Field(
        gt=0, le=1_000_000, description="megabits per second the link's transfers may use"
    )


class LinkBudgetOut(BaseModel):
    """A link's budget and the share its transfers hold now."""

    source: str
    destination: str
    mbps: float = Field(description="the budget")
    allocated_mbps: float = Field(description="the rates last sent to its running transfers")
    transfers: int = Field(description="its transfers under the allocator")
    paused: int = Field(description="of which paused for higher-priority deadlines")
    updated_by: str | None
    updated_at: datetime
