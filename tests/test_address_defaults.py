"""Default shipping/billing address rules (SPEC §6): the first address of an empty book
is both defaults; a flag sent true moves that default; false never clears one;
removing a default leaves none. The read model must say what the fold says."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from events.customer import customer_stream
from service.domain import addresses
from service.domain.customer import AddressState, CustomerState, fold
from service.domain.errors import AddressNotFound
from service.typedefs import STORE
from tests.conftest import Customer
from tests.test_addresses import add_address, address_attributes, patch_doc

Flags = dict[str, tuple[bool, bool]]


async def flags(client: TestClient, customer: Customer) -> Flags:
    """(isDefaultShipping, isDefaultBilling) of every address, by id."""
    resp = await client.get(f"/customers/{customer.reference}/addresses", headers=customer.headers)
    assert resp.status == 200
    return {
        a["id"]: (a["attributes"]["isDefaultShipping"], a["attributes"]["isDefaultBilling"])
        for a in (await resp.json())["data"]
    }


async def add(
    client: TestClient, customer: Customer, shipping: bool = False, billing: bool = False
) -> str:
    """Add an address with the given flags; returns its id."""
    data = await add_address(client, customer, isDefaultShipping=shipping, isDefaultBilling=billing)
    return data["id"]


async def patch(client: TestClient, customer: Customer, address_id: str, **attrs: Any) -> None:
    """PATCH an address and expect 200."""
    resp = await client.patch(
        f"/customers/{customer.reference}/addresses/{address_id}",
        json=patch_doc(**attrs),
        headers=customer.headers,
    )
    assert resp.status == 200, await resp.text()


async def delete(client: TestClient, customer: Customer, address_id: str) -> None:
    """DELETE an address and expect 204."""
    resp = await client.delete(
        f"/customers/{customer.reference}/addresses/{address_id}", headers=customer.headers
    )
    assert resp.status == 204


# ------------------------------------------------------------------ over HTTP


async def test_the_first_address_becomes_both_defaults_even_when_sent_false(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    assert await flags(client, customer) == {first: (True, True)}


async def test_a_second_address_with_shipping_only_moves_shipping_only(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer, shipping=True)
    assert await flags(client, customer) == {first: (False, True), second: (True, False)}


async def test_a_second_address_with_both_flags_false_moves_nothing(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    assert await flags(client, customer) == {first: (True, True), second: (False, False)}


async def test_a_second_address_with_both_flags_true_takes_both(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer, shipping=True, billing=True)
    assert await flags(client, customer) == {first: (False, False), second: (True, True)}


async def test_patch_true_moves_that_default(client: TestClient, customer: Customer) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await patch(client, customer, second, isDefaultBilling=True)
    assert await flags(client, customer) == {first: (True, False), second: (False, True)}


async def test_patch_false_on_a_default_keeps_it(client: TestClient, customer: Customer) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await patch(client, customer, first, isDefaultShipping=False, isDefaultBilling=False)
    assert await flags(client, customer) == {first: (True, True), second: (False, False)}


async def test_patch_true_on_the_default_already_changes_nothing(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await patch(client, customer, first, isDefaultShipping=True)
    assert await flags(client, customer) == {first: (True, True), second: (False, False)}


async def test_deleting_a_default_address_leaves_no_default(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await delete(client, customer, first)
    assert await flags(client, customer) == {second: (False, False)}


async def test_an_address_added_after_deleting_the_default_is_not_default_by_itself(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await delete(client, customer, first)
    third = await add(client, customer)
    assert await flags(client, customer) == {second: (False, False), third: (False, False)}


async def test_the_first_address_of_an_emptied_book_becomes_both_defaults(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    await delete(client, customer, first)
    again = await add(client, customer)
    assert await flags(client, customer) == {again: (True, True)}


async def test_a_default_left_unset_can_be_given_again(
    client: TestClient, customer: Customer
) -> None:
    first = await add(client, customer)
    second = await add(client, customer)
    await delete(client, customer, first)
    await patch(client, customer, second, isDefaultShipping=True)
    assert await flags(client, customer) == {second: (True, False)}


async def test_the_read_model_says_what_the_fold_says(
    app: web.Application, conn: asyncpg.Connection, client: TestClient, customer: Customer
) -> None:
    a = await add(client, customer)
    b = await add(client, customer, shipping=True)
    c = await add(client, customer, billing=True)
    await patch(client, customer, a, isDefaultShipping=True, city="Kiel")
    await patch(client, customer, b, isDefaultBilling=True, isDefaultShipping=False)
    await delete(client, customer, c)
    d = await add(client, customer, shipping=True, billing=True)
    await patch(client, customer, d, isDefaultShipping=False, zipCode="24103")
    state = fold(await app[STORE].read_stream(customer_stream(customer.reference)))
    folded = {
        k: (v.is_default_shipping, v.is_default_billing, v.fields["city"], v.fields["zip_code"])
        for k, v in state.addresses.items()
    }
    rows = await conn.fetch(
        """SELECT uuid::text AS id, is_default_shipping, is_default_billing, city, zip_code
           FROM addresses WHERE customer_reference = $1""",
        customer.reference,
    )
    table = {r["id"]: tuple(r.values())[1:] for r in rows}
    assert table == folded
    assert {k: v[:2] for k, v in folded.items()} == {
        a: (False, False),
        b: (False, False),
        d: (True, True),
    }


# ------------------------------------------------------------------ the decisions, pure


def _loaded(**overrides: Any) -> dict[str, Any]:
    """Address attributes as the schema loads them (snake_case names)."""
    attrs = address_attributes(**overrides)
    return {
        "salutation": attrs["salutation"],
        "first_name": attrs["firstName"],
        "last_name": attrs["lastName"],
        "address1": attrs["address1"],
        "address2": attrs["address2"],
        "zip_code": attrs["zipCode"],
        "city": attrs["city"],
        "iso2_code": attrs["iso2Code"],
        "is_default_shipping": attrs["isDefaultShipping"],
        "is_default_billing": attrs["isDefaultBilling"],
    }


def _state_with(*address_ids: str) -> CustomerState:
    """A living customer holding addresses, the first one the default of both."""
    state = CustomerState(reference="DE--1", version=1)
    for n, address_id in enumerate(address_ids):
        state.addresses[address_id] = AddressState(address_id, {}, n == 0, n == 0)
    return state


def test_add_to_an_empty_book_decides_both_defaults() -> None:
    (event,) = addresses.add(_state_with(), "a", _loaded())
    assert (event.is_default_shipping, event.is_default_billing) == (True, True)


def test_add_to_a_book_keeps_the_flags_sent() -> None:
    (event,) = addresses.add(_state_with("a"), "b", _loaded(isDefaultBilling=True))
    assert (event.is_default_shipping, event.is_default_billing) == (False, True)


def test_update_with_false_flags_only_decides_nothing() -> None:
    state = _state_with("a", "b")
    assert addresses.update(state, "a", {"is_default_shipping": False}) == []
    assert addresses.update(state, "b", {"is_default_billing": False}) == []


def test_update_of_an_unknown_address_is_refused() -> None:
    with pytest.raises(AddressNotFound):
        addresses.update(_state_with("a"), "z", {"city": "Kiel"})


def test_remove_of_an_unknown_address_is_refused() -> None:
    with pytest.raises(AddressNotFound):
        addresses.remove(_state_with("a"), "z")
