"""schemathesis against a running service, from its own /openapi.json: every route, with and
without valid tokens, no 5xx and every response as documented.

Bounded for CI by FUZZ_EXAMPLES (examples per operation and mode, default 6); `make fuzz`
runs a longer one.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.mail.sink import MailSink
from tests.procs import Service, customer_over_http

pytestmark = pytest.mark.process

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CLIENT = {"id": "fuzz-client", "secret": "fuzz-secret-1", "scopes": ["events:read", "audit:read"]}


async def _client_token(session: aiohttp.ClientSession, url: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT["id"],
        "client_secret": CLIENT["secret"],
        "scope": " ".join(CLIENT["scopes"]),
    }
    async with session.post(f"{url}/token", data=form) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["access_token"]


def _fuzz(
    schema: Any,
    url: str,
    headers: dict[str, str],
    path_parameters: dict[str, str],
    mode: GenerationMode,
) -> list[str]:
    """Run every operation; the failures found (empty when all conform)."""
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # Anonymising the token's own customer ends that token: do it last.
    operations.sort(key=lambda op: (op.method.upper(), op.path) == ("DELETE", "/customers/{ref}"))
    http = requests.Session()
    for operation in operations:
        params = {k: v for k, v in path_parameters.items() if f"{{{k}}}" in operation.path}
        strategy = operation.as_strategy(mode, path_parameters=params or None)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            response = case.call(base_url=url, session=http, headers=headers, timeout=10)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to negate (no parameters, or only free-form strings)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group
            failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])
    return failures


@pytest.fixture
async def service(database: str, smtp: MailSink, data_dir: Path) -> Any:
    """The service under fuzzing, in its own process, with one internal client."""
    env = {"OAUTH_CLIENTS": json.dumps([CLIENT])}
    svc = await Service(database, smtp.port, data_dir, env=env).start()
    yield svc
    assert await svc.stop() == 0


async def test_every_route_answers_as_documented_without_and_with_tokens(
    service: Service, smtp: MailSink
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{service.url}/openapi.json") as r:
            document = await r.json()
        ref, _, customer_token = await customer_over_http(session, service.url, smtp)
        client_token = await _client_token(session, service.url)
    schema = schemathesis.openapi.from_dict(document)
    runs = [
        ({}, {}),
        ({"Authorization": f"Bearer {client_token}"}, {}),
        ({"Authorization": f"Bearer {customer_token}"}, {"ref": ref}),
    ]
    failures: list[str] = []
    for headers, params in runs:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # In a thread: the SMTP sink of this test runs on this event loop meanwhile.
            failures += await asyncio.to_thread(_fuzz, schema, service.url, headers, params, mode)
    assert failures == [], "\n\n".join(failures)
