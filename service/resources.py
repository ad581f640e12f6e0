"""Read-model rows as JSON:API resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pycountry

from service.auth.login import TokenPair
from service.jsonapi import Resource, day, timestamp


def customer_resource(row: Mapping[str, Any]) -> Resource:
    """A `customers` resource from a customers row."""
    ref = row["customer_reference"]
    return Resource(
        type="customers",
        id=ref,
        attributes={
            "salutation": row["salutation"],
            "firstName": row["first_name"],
            "lastName": row["last_name"],
            "email": row["email"],
            "gender": row["gender"],
            "dateOfBirth": day(row["date_of_birth"]),
            "createdAt": timestamp(row["created_at"]),
            "updatedAt": timestamp(row["updated_at"]),
        },
        path=f"/customers/{ref}",
    )


def country_name(iso2: str | None) -> str | None:
    """The English short name of an ISO 3166-1 alpha-2 code."""
    if not iso2:
        return None
    country = pycountry.countries.get(alpha_2=iso2.upper())
    return country.name if country is not None else None


def address_resource(row: Mapping[str, Any]) -> Resource:
    """An `addresses` resource from an addresses row."""
    ref = row["customer_reference"]
    uuid = str(row["uuid"])
    return Resource(
        type="addresses",
        id=uuid,
        attributes={
            "salutation": row["salutation"],
            "firstName": row["first_name"],
            "lastName": row["last_name"],
            "address1": row["address1"],
            "address2": row["address2"],
            "address3": row["address3"],
            "zipCode": row["zip_code"],
            "city": row["city"],
            "country": country_name(row["iso2_code"]),
            "iso2Code": row["iso2_code"],
            "company": row["company"],
            "phone": row["phone"],
            "isDefaultShipping": row["is_default_shipping"],
            "isDefaultBilling": row["is_default_billing"],
        },
        path=f"/customers/{ref}/addresses/{uuid}",
    )


def subscription_resource(row: Mapping[str, Any]) -> Resource:
    """An `availability-notifications` resource from an availability_subscriptions row."""
    key = row["subscription_key"]
    return Resource(
        type="availability-notifications",
        id=key,
        attributes={
            "localeName": row["locale_name"],
            "email": row["email"],
            "sku": row["sku"],
        },
        path=f"/availability-notifications/{key}",
    )


def token_pair_resource(resource_type: str, pair: TokenPair) -> Resource:
    """The Glue token document's resource (`id` null) for a fresh pair."""
    return Resource(
        type=resource_type,
        id=None,
        attributes={
            "tokenType": "Bearer",
            "expiresIn": pair.expires_in,
            "accessToken": pair.access_token,
            "refreshToken": pair.refresh_token,
            "refreshTokenExpiresIn": pair.refresh_expires_in,
            "idCompanyUser": None,
        },
        path=f"/{resource_type}",
    )
