"""Fault switches: what they look like, and a registry that fires each one count times."""

from __future__ import annotations

import uuid
from collections.abc import Collection
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


class _EndpointFault(_Fault):
    """A fault bound to one Node API endpoint, named "METHOD /route/template"."""

    endpoint: str
    after_effect: bool = False


class HttpError(_EndpointFault):
    """Answer the endpoint with status and the generic error body."""

    kind: Literal["http_error"]
    status: int = Field(default=503, ge=400, le=599)


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


FaultSpec = Annotated[
    FailTransfers
    | FailedCodeZero
    | DropConnection
    | RejectTokens
    | InvalidIterationToken
    | HttpError
    | Hang
    | Empty200
    | EmptyError,
    Field(discriminator="kind"),
]
EndpointFault = HttpError | Hang | Empty200 | EmptyError
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
    if isinstance(spec, EndpointFault) and known_endpoints and spec.endpoint not in known_endpoints:
        raise FaultError(
            f"unknown endpoint {spec.endpoint!r}; use one of: {', '.join(sorted(known_endpoints))}"
        )
    return spec


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

    def take(self, kind: str, endpoint: str | None = None) -> FaultSpec | None:
        """Fire the first armed fault of this kind (and endpoint), or return None."""
        for fault in self._faults:
            if fault.spec.kind != kind:
                continue
            if endpoint is not None and getattr(fault.spec, "endpoint", None) != endpoint:
                continue
            fault.fired += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault.spec
        return None

    def take_endpoint(self, endpoint: str) -> EndpointFault | None:
        """Fire the first armed endpoint fault (any kind) for this endpoint."""
        for fault in self._faults:
            if isinstance(fault.spec, EndpointFault) and fault.spec.endpoint == endpoint:
                spec = self.take(fault.spec.kind, endpoint)
                assert isinstance(spec, EndpointFault)
                return spec
        return None
