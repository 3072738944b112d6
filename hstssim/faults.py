"""Fault switches: what they look like, and a registry that fires each one count times."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Fault(BaseModel):
    """Fields every fault has: count = how many times it fires (None or 0: forever)."""

    model_config = ConfigDict(extra="forbid")
    count: int | None = Field(default=1, ge=0)


class FailTransfers(_Fault):
    """Sessions this node starts (as the source) fail at once with error_code."""

    kind: Literal["fail_transfers"]
    error_code: int = Field(ge=0)
    error_desc: str | None = None


class FailedCodeZero(_Fault):
    """Transfers that would complete end failed with error_code 0 and error_desc ""."""

    kind: Literal["failed_code_zero"]


class DropConnection(_Fault):
    """The data connection of a session this node takes part in drops after after_bytes."""

    kind: Literal["drop_connection"]
    after_bytes: int = Field(ge=0)


class RejectTokens(_Fault):
    """This node, as the destination, refuses incoming sessions' tokens (error 19)."""

    kind: Literal["reject_tokens"]


class InvalidIterationToken(_Fault):
    """GET /ops/transfers with an iteration_token answers the invalid-token 400."""

    kind: Literal["invalid_iteration_token"]


class ErrorCodeString(_Fault):
    """A transfer ending failed shows its transfer-level error_code as a string ("19")."""

    kind: Literal["error_code_string"]


class SpecEcho(_Fault):
    """POST /ops/transfers answers the transfer spec echo plus id (no status), as OAS446 does."""

    kind: Literal["spec_echo"]


class ShortPage(_Fault):
    """A GET /ops/transfers page holds at most size items, fewer than count, while more remain."""

    kind: Literal["short_page"]
    size: int = Field(default=1, ge=1)


class RepeatChange(_Fault):
    """A GET /ops/transfers page lists a change twice: from the previous page, or on itself."""

    kind: Literal["repeat_change"]
    where: Literal["previous_page", "same_page"] = "previous_page"


class _RoutedFault(_Fault):
    """A fault bound to one Node API endpoint, "METHOD /route/template", or "*" for all."""

    endpoint: str


class _EndpointFault(_RoutedFault):
    """An endpoint fault that acts before serving the request, or after it (after_effect)."""

    after_effect: bool = False


class HttpError(_EndpointFault):
    """Answer the endpoint with status and the generic error body; with echo_request its
    user_message repeats the request (its Authorization header and body), as some nodes and
    proxies in front of them do."""

    kind: Literal["http_error"]
    status: int = Field(default=503, ge=400, le=599)
    echo_request: bool = False


class Hang(_EndpointFault):
    """Sleep seconds before answering."""

    kind: Literal["hang"]
    seconds: float = Field(ge=0)


class Empty200(_EndpointFault):
    """Answer 200 with an empty body."""

    kind: Literal["empty_200"]


class EmptyError(_EndpointFault):
    """Answer status with the body {}."""

    kind: Literal["empty_error"]
    status: int = Field(default=500, ge=400, le=599)


class CloseConnection(_EndpointFault):
    """Close the connection without any HTTP answer (after serving, with after_effect)."""

    kind: Literal["close_connection"]


class Restart(_EndpointFault):
    """Restart the node (as POST /admin/restart) before serving, or after (after_effect)."""

    kind: Literal["restart"]
    keep_history: bool = False  # keep ended transfers' records (only the cursor is renumbered)


class ContentType(_RoutedFault):
    """Serve the request but answer with this Content-Type (HST 3.x: application/x-javascript)."""

    kind: Literal["content_type"]
    content_type: str = "application/x-javascript"


FaultSpec = Annotated[
    FailTransfers
    | FailedCodeZero
    | DropConnection
    | RejectTokens
    | InvalidIterationToken
    | ErrorCodeString
    | SpecEcho
    | ShortPage
    | RepeatChange
    | HttpError
    | Hang
    | Empty200
    | EmptyError
    | CloseConnection
    | Restart
    | ContentType,
    Field(discriminator="kind"),
]
EndpointFault = HttpError | Hang | Empty200 | EmptyError | CloseConnection | Restart | ContentType
ANY_ENDPOINT = "*"
_ADAPTER: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)


class FaultError(ValueError):
    """A fault description that cannot be used."""


@dataclass
class ActiveFault:
    """A registered fault and how many more times it fires (None: forever)."""

    id: str
    spec: FaultSpec
    remaining: int | None
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the fault as the admin API shows it."""
        return {
            **self.spec.model_dump(),
            "id": self.id,
            "remaining": self.remaining,
            "fired": self.fired,
        }


def parse_fault(data: Any, known_endpoints: Collection[str] = ()) -> FaultSpec:
    """Validate a fault description; raise FaultError with a readable message."""
    try:
        spec = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise FaultError(str(exc)) from exc
    if (
        isinstance(spec, EndpointFault)
        and known_endpoints
        and spec.endpoint not in (ANY_ENDPOINT, *known_endpoints)
    ):
        known = ", ".join(sorted(known_endpoints))
        raise FaultError(
            f"unknown endpoint {spec.endpoint!r}; use {ANY_ENDPOINT!r} or one of: {known}"
        )
    return spec


def _serves(spec: FaultSpec, endpoint: str) -> bool:
    """Tell whether an endpoint fault applies to the endpoint ("*" applies to all)."""
    return isinstance(spec, EndpointFault) and spec.endpoint in (endpoint, ANY_ENDPOINT)


class FaultRegistry:
    """The faults armed on one node, fired in the order they were added."""

    def __init__(self) -> None:
        self._faults: list[ActiveFault] = []
        self.known_endpoints: Collection[str] = ()

    def add(self, data: Any) -> ActiveFault:
        """Arm a fault from its JSON description."""
        spec = parse_fault(data, self.known_endpoints)
        fault = ActiveFault(id=uuid.uuid4().hex[:12], spec=spec, remaining=spec.count or None)
        self._faults.append(fault)
        return fault

    def list(self) -> list[dict[str, Any]]:
        """Return the armed faults."""
        return [fault.to_json() for fault in self._faults]

    def clear(self) -> int:
        """Disarm every fault; return how many there were."""
        count = len(self._faults)
        self._faults.clear()
        return count

    def remove(self, fault_id: str) -> bool:
        """Disarm one fault by id."""
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def _fire(self, fault: ActiveFault) -> FaultSpec:
        """Count one firing of a fault; disarm it when it has no firings left."""
        fault.fired += 1
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
        return fault.spec

    def take(self, kind: str, when: Callable[[FaultSpec], bool] | None = None) -> FaultSpec | None:
        """Fire the first armed fault of this kind (for which when() holds), or return None."""
        for fault in self._faults:
            if fault.spec.kind == kind and (when is None or when(fault.spec)):
                return self._fire(fault)
        return None

    def take_endpoint(self, endpoint: str) -> EndpointFault | None:
        """Fire the first armed endpoint fault (any kind) for this endpoint."""
        for fault in self._faults:
            if _serves(fault.spec, endpoint):
                spec = self._fire(fault)
                assert isinstance(spec, EndpointFault)
                return spec
        return None
