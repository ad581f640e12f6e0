"""Logs: secrets never reach them, whatever a request carries."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.logs import JsonFormatter, redact
from service.mail.sink import MailSink, links_in
from tests.conftest import (
    PASSWORD,
    bearer,
    confirm,
    confirmation_key,
    login,
    register,
    token_from_link,
    unique_email,
    wait_for_mailer,
)

NEW_PASSWORD = "Second-Secret-42"
RESTORED_PASSWORD = "Third-Secret-77"
WRONG_PASSWORD = "Wrong-Secret-99"
FORGED_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJERS0tMSJ9.Zm9yZ2Vkc2lnbmF0dXJl"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged at any level, formatted as in production."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    # The test's own SMTP server stands in for the outside world, not for the service.
    handler.addFilter(lambda r: not r.name.startswith(("service.mail.sink", "mail.log")))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def _jsonapi(kind: str, **attributes: str) -> dict[str, object]:
    return {"data": {"type": kind, "attributes": attributes}}


async def test_a_whole_account_lifecycle_logs_no_secret(
    client: TestClient, app: web.Application, smtp: MailSink, captured: io.StringIO
) -> None:
    secrets = [PASSWORD, NEW_PASSWORD, RESTORED_PASSWORD, WRONG_PASSWORD, FORGED_TOKEN]
    email = unique_email("secrets")
    ref = (await register(client, email=email))["data"]["id"]
    key = await confirmation_key(smtp, email)
    secrets.append(key)
    assert await confirm(client, key) == 204

    first = (await (await login(client, email)).json())["data"]["attributes"]
    refreshed = await client.post(
        "/refresh-tokens", json=_jsonapi("refresh-tokens", refreshToken=first["refreshToken"])
    )
    second = (await refreshed.json())["data"]["attributes"]
    form = {"grant_type": "password", "username": email, "password": PASSWORD}
    oauth = await (await client.post("/token", data=form)).json()
    secrets += [first["accessToken"], first["refreshToken"], second["accessToken"]]
    secrets += [second["refreshToken"], oauth["access_token"], oauth["refresh_token"]]

    assert (await client.get(f"/customers/{ref}", headers=bearer(oauth["access_token"]))).ok
    assert (await client.get(f"/customers/{ref}", headers=bearer(FORGED_TOKEN))).status == 401
    revoked = await client.delete(
        f"/refresh-tokens/{oauth['refresh_token']}", headers=bearer(oauth["access_token"])
    )
    assert revoked.status == 204
    change = _jsonapi(
        "customer-password",
        password=PASSWORD,
        newPassword=NEW_PASSWORD,
        confirmPassword=NEW_PASSWORD,
    )
    changed = await client.patch(
        f"/customer-password/{ref}", json=change, headers=bearer(second["accessToken"])
    )
    assert changed.status == 204
    assert (await login(client, email, WRONG_PASSWORD)).status == 401

    forgot = _jsonapi("customer-forgotten-password", email=email)
    assert (await client.post("/customer-forgotten-password", json=forgot)).status == 204
    restore_mail = await smtp.wait_for(
        lambda m: str(m["To"]) == email and "password/restore" in "".join(links_in(m))
    )
    restore_key = token_from_link(links_in(restore_mail)[0])
    secrets.append(restore_key)
    restore = {
        "data": {
            "type": "customer-restore-password",
            "id": "mine",
            "attributes": {
                "restorePasswordKey": restore_key,
                "password": RESTORED_PASSWORD,
                "confirmPassword": RESTORED_PASSWORD,
            },
        }
    }
    assert (await client.patch("/customer-restore-password/mine", json=restore)).status == 204
    await wait_for_mailer(app)

    logged = captured.getvalue()
    assert "POST /customers 201" in logged  # the access log was captured
    leaked = [s for s in secrets if s in logged]
    assert leaked == []


@pytest.mark.parametrize(
    "message",
    [
        '{"password": "hunter2-secret"}',
        "password=hunter2-secret&username=a@b.c",
        "Authorization: Bearer hunter2-secret",
        "registrationKey: hunter2-secret",
        "DELETE /refresh-tokens/hunter2-secret 204",
        "http://shop.test/password/restore?token=hunter2-secret",
    ],
)
def test_the_redactor_masks_secrets_in_any_message(message: str) -> None:
    assert "hunter2-secret" not in redact(message)
