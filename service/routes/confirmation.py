"""/customer-confirmation: redeem the registration key from the mail."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from events.customer import CustomerConfirmed, customer_stream
from events.types import Event
from service.auth.onetime import key_hash
from service.commands import run
from service.domain.customer import CustomerState
from service.domain.errors import InvalidConfirmationKey
from service.endpoint import endpoint
from service.jsonapi import no_content
from service.schemas.auth import ConfirmationSchema
from service.typedefs import BODY, POOL


@endpoint(auth="optional", body_type="customer-confirmation", summary="Confirm a registration.")
async def confirm(request: web.Request) -> web.Response:
    """204 once per key; unknown or used keys answer 423."""
    attrs = ConfirmationSchema().check(request[BODY].attributes)
    hashed = key_hash(attrs["registration_key"])
    ref = await request.app[POOL].fetchval(
        "SELECT customer_reference FROM customers WHERE registration_key_hash = $1",
        bytes.fromhex(hashed),
    )
    if ref is None:
        raise InvalidConfirmationKey()

    def decide(state: CustomerState) -> Sequence[Event]:
        if not state.exists or state.confirmed or state.registration_key_hash != hashed:
            raise InvalidConfirmationKey()
        return [CustomerConfirmed(registration_key_hash=hashed)]

    # The key came from the customer's mailbox: the customer confirms.
    await run(request, customer_stream(ref), decide, customer=ref)
    return no_content()


def setup(app: web.Application) -> None:
    """Register the confirmation route."""
    app.router.add_post("/customer-confirmation", confirm, name="customer-confirmation")
