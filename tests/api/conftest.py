"""The API app over real services, a real database and two simulated nodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from orchestrator.api.app import create_app
from orchestrator.services.tokens import Scope, create_token
from tests.services.conftest import Stack
from tests.services.conftest import stack as stack  # the fixtures, for this folder
from tests.services.conftest import stack_settings as stack_settings


@dataclass
class Api:
    """A TestClient and a token per scope."""

    client: TestClient
    tokens: dict[str, str]
    stack: Stack

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


@pytest.fixture
def api(stack: Stack) -> Iterator[Api]:
    tokens = {}
    with stack.ctx.sessions() as session:
        for scope in Scope:
            tokens[scope.value] = create_token(session, f"test-{scope}", [scope]).secret
        session.commit()
    with TestClient(create_app(stack.ctx), raise_server_exceptions=False) as client:
        yield Api(client, tokens, stack)
