"""GET /openapi.json: an OpenAPI 3.1 document of exactly the routes the app serves."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from marshmallow import ValidationError
from openapi_spec_validator import validate

from service import openapi
from service.jsonschema import attributes_schema, field_schema
from service.schemas.customers import ProfileSchema, RegistrationSchema


async def _document(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    return await resp.json()


def _served(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.resource is None or route.method == "HEAD":
            continue
        path = openapi._PARAM.sub(r"{\1}", route.resource.canonical)
        out.add((route.method.lower(), path))
    return out


async def test_document_validates_as_openapi_3_1(client: TestClient) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1")
    validate(doc)


async def test_every_served_route_has_an_entry_and_every_entry_a_route(
    client: TestClient, app: web.Application
) -> None:
    doc = await _document(client)
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    served = _served(app)
    assert served - documented == set(), "routes without a spec entry"
    assert documented - served == set(), "spec entries without a route"


def test_every_route_handler_declares_its_endpoint(app: web.Application) -> None:
    undeclared = [
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and getattr(route.handler, "endpoint", None) is None
    ]
    assert undeclared == []


async def test_every_operation_documents_the_error_document(client: TestClient) -> None:
    doc = await _document(client)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            default = op["responses"]["default"]["content"]["application/vnd.api+json"]
            assert default["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path)
            assert op["summary"], (method, path)


async def test_protected_routes_require_a_bearer_token(client: TestClient) -> None:
    doc = await _document(client)
    assert doc["paths"]["/customers/{ref}"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/customers"]["post"]["security"] == [{}, {"bearerAuth": []}]
    assert doc["paths"]["/health/live"]["get"]["security"] == []
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")


async def test_path_parameters_are_declared(client: TestClient) -> None:
    doc = await _document(client)
    params = doc["paths"]["/customers/{ref}"]["patch"]["parameters"]
    assert {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"}} in params


async def test_json_api_bodies_name_their_resource_type(client: TestClient) -> None:
    doc = await _document(client)
    body = doc["paths"]["/customers"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/vnd.api+json", "application/json"}
    data = body["content"]["application/json"]["schema"]["properties"]["data"]
    assert data["properties"]["type"] == {"const": "customers"}


def test_registration_attributes_are_required_in_glue_order() -> None:
    schema = attributes_schema(RegistrationSchema)
    assert schema["required"] == [
        "salutation",
        "firstName",
        "lastName",
        "email",
        "password",
        "confirmPassword",
        "acceptedTerms",
    ]
    props = schema["properties"]
    assert props["acceptedTerms"] == {"const": True}
    assert props["salutation"]["enum"] == ["Mr", "Mrs", "Ms", "Dr"]
    assert props["gender"]["enum"] == ["Male", "Female", None]
    assert (props["firstName"]["minLength"], props["firstName"]["maxLength"]) == (1, 100)


def test_patch_attributes_require_nothing() -> None:
    assert "required" not in attributes_schema(ProfileSchema, partial=True)


_SAMPLES: list[Any] = [
    None,
    "",
    " ",
    "x",
    "Mr",
    "Male",
    "Other",
    "a" * 100,
    "a" * 101,
    "john@example.com",
    "not-an-email",
    "1990-01-31",
    "1990-02-30",
    "31.01.1990",
    True,
    False,
    1,
    "change123!Secret",
]


@pytest.mark.parametrize("name", list(RegistrationSchema().fields))
def test_field_schema_accepts_what_the_field_accepts(name: str) -> None:
    field = RegistrationSchema().fields[name]
    schema = field_schema(field)
    for value in _SAMPLES:
        try:
            field.deserialize(value)
            accepted = True
        except ValidationError:
            accepted = False
        valid = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        ).is_valid(value)
        assert valid == accepted, (name, value, schema)
