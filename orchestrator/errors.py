"""The one exception tree of the orchestrator.

OrchestratorError
├── ConfigError                  bad settings or node registry entry
└── NodeError                    a Node API call failed (node, operation, status, retryable)
    ├── NodeUnreachable          connect/read failures where the node may not have acted
    ├── NodeOutcomeUnknown       the request may have taken effect (timeout after sending)
    ├── NodeAuthError            401/403: credentials or permissions
    ├── NodeNotFound             404 for a resource (e.g. a transfer record expired)
    │   └── ActivityLoggingDisabled   GET /ops/transfers while activity logging is off
    ├── InvalidIterationToken    the node no longer accepts the saved change cursor
    ├── NodeRequestRejected      other 4xx: the request itself is wrong
    │   └── TransferSetupError   a per-item error inside a 200 from *_setup
    ├── NodeServerError          5xx: the node failed; worth retrying later
    ├── NodeProtocolError        the answer does not parse as the Node API
    └── NodeConfigurationError   the node's registry entry cannot be used (its CA bundle)
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError):
    """A setting or registry entry is invalid."""


class NodeError(OrchestratorError):
    """A Node API call failed; says where, what, and whether trying again can help."""

    retryable_default = False

    def __init__(
        self,
        message: str,
        *,
        node: str,
        operation: str,
        status: int | None = None,
        retryable: bool | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.node = node
        self.operation = operation
        self.status = status
        self.retryable = self.retryable_default if retryable is None else retryable
        self.code = code
        self.reason = reason
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status is not None else ""
        return f"{self.node}: {self.operation} failed{status}: {self.message}"


class NodeUnreachable(NodeError):
    """The node could not be reached; the request had no effect."""

    retryable_default = True


class NodeOutcomeUnknown(NodeError):
    """The request was sent but no answer came back: it may or may not have taken effect."""

    retryable_default = True


class NodeAuthError(NodeError):
    """The node refused the credentials (401) or the permission (403)."""


class NodeNotFound(NodeError):
    """The node answered 404 for the resource."""


class ActivityLoggingDisabled(NodeNotFound):
    """The node has activity logging off, so GET /ops/transfers cannot work."""


class InvalidIterationToken(NodeError):
    """The node rejected the iteration token (e.g. after it lost its history)."""


class NodeRequestRejected(NodeError):
    """The node rejected the request as invalid (4xx)."""


class TransferSetupError(NodeRequestRejected):
    """One item of an upload_setup/download_setup call came back as an error."""


class NodeServerError(NodeError):
    """The node failed to serve the request (5xx)."""

    retryable_default = True


class NodeProtocolError(NodeError):
    """The node's answer is not what the Node API describes."""

    retryable_default = True


class NodeConfigurationError(NodeError):
    """The node's registry entry cannot be used as it is (a CA bundle that is missing or not a
    PEM bundle): no request was sent, and none will work until a person changes the entry.

    ``field`` names the registry field at fault.
    """

    def __init__(self, message: str, *, node: str, field: str, operation: str = "connect") -> None:
        self.field = field
        super().__init__(message, node=node, operation=operation, retryable=False)
