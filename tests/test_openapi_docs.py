"""The OpenAPI document of a service (`service_openapi`) and the pages behind `/docs` (`docs.py`)."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import BaseModel

import fnserve as fs
from fnserve.docs import (
    ASSETS_URL,
    INDEX_URL,
    SERVICE_SPEC_PATH,
    docs_index_html,
    service_docs_url,
    service_spec_url,
    swagger_asset,
    swagger_ui_html,
)
from fnserve.openapi import api_description, service_openapi


class Address(BaseModel):
    city: str


class Item(BaseModel):
    name: str
    address: Address


def _other_item_model() -> type[BaseModel]:
    class Item(BaseModel):  # same name as the module-level Item, another shape
        sku: int

    return Item


OtherItem = _other_item_model()


@fs.service
def shop() -> dict[str, Any]:
    """A shop.

    Sells things.
    """
    return {"currency": "EUR"}


@shop.endpoint("/items/{item_id}", method="GET")
def get_item(item_id: int) -> Item | None:
    """Fetches one item.

    Looks it up by id.
    ---
    tags: [items]
    responses:
      404:
        description: No such item
    """
    raise NotImplementedError


@shop.endpoint("/items")
def add_items(items: list[Item], note: str = "") -> list[Item]:
    """Adds items."""
    return items


@shop.endpoint("/stock/{sku}", method="PUT")
def set_stock(sku: int, other: OtherItem, count: int = 0) -> list[OtherItem]:  # type: ignore[valid-type]
    """Sets the stock
    of one item.

    ---
    put:
      tags: [stock]
      responses:
        "200":
          description: The new stock
    get:
      tags: [ignored]
    """
    raise NotImplementedError


@shop.endpoint("/count", method="GET")
def count() -> int:
    return 0


@shop.endpoint("/feed", streaming=True)
def feed(topic: str, currency: str) -> Iterator[str]:
    yield topic + currency


@shop.endpoint("/any")
def anything(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@fs.service(auth=False, route_prefix="/")
def public() -> None:
    return None


@public.endpoint("/")
def root(name: str) -> str:
    return name


def valid(document: dict[str, Any]) -> dict[str, Any]:
    validate(document, cls=OpenAPIV31SpecValidator)
    return document


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def json_body(operation: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return valid(service_openapi(shop.spec, server_url="http://127.0.0.1:8000/", version=7))


def test_service_openapi_describes_the_service_and_its_server(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": "shop", "description": "A shop.\n\nSells things.", "version": "7"}
    assert document["servers"] == [{"url": "http://127.0.0.1:8000/shop"}]
    assert set(document["paths"]) == {"/items/{item_id}", "/items", "/stock/{sku}", "/count", "/feed", "/any", "/ping"}


def test_service_openapi_keeps_the_prefix_in_paths_without_a_server_url() -> None:
    document = valid(service_openapi(shop.spec))
    assert "servers" not in document
    assert document["info"]["version"] == "1"
    assert "/shop/items/{item_id}" in document["paths"]
    assert "/shop/ping" in document["paths"]


def test_service_openapi_every_ref_resolves(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(resolve(document, ref), dict)
    assert "$defs" not in str(document)


def test_service_openapi_path_parameters_are_required_and_typed(document: dict[str, Any]) -> None:
    operation = document["paths"]["/items/{item_id}"]["get"]
    assert operation["parameters"] == [
        {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    assert "requestBody" not in operation  # GET whose only parameter is in the path


def test_service_openapi_request_body_leaves_out_path_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/stock/{sku}"]["put"]
    assert [p["name"] for p in operation["parameters"]] == ["sku"]
    body = json_body(operation)
    assert set(body["properties"]) == {"other", "count"}
    assert body["required"] == ["other"]
    assert operation["requestBody"]["required"] is True

    optional = document["paths"]["/items"]["post"]
    assert json_body(optional)["required"] == ["items"]

    kwargs = document["paths"]["/any"]["post"]
    assert kwargs["requestBody"]["required"] is False
    assert json_body(kwargs)["additionalProperties"] is True


def test_service_openapi_has_no_body_for_an_endpoint_without_parameters(document: dict[str, Any]) -> None:
    operation = document["paths"]["/count"]["get"]
    assert "requestBody" not in operation
    assert "parameters" not in operation
    assert "422" not in operation["responses"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "integer"}


def test_service_openapi_leaves_auto_parameters_optional() -> None:
    document = valid(service_openapi(shop.spec, auto_parameters={"currency"}))
    body = json_body(document["paths"]["/shop/feed"]["post"])
    assert body["required"] == ["topic"]
    assert "currency" in body["properties"]


class _ReprFails:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("EUR", "'EUR'"),
        ((1, 5, "foo"), "(1, 5, 'foo')"),
        (None, "None"),
        (list(range(1_000_000)), "[" + ", ".join(map(str, range(50))) + ", ...]"),
        ("x" * 10_000, None),
        (_ReprFails(), "<_ReprFails instance at 0x"),
    ],
    ids=["str", "tuple", "none", "long-list", "long-str", "repr-raises"],
)
def test_api_description_shows_an_injected_parameter_as_its_values_repr(value: object, shown: str | None) -> None:
    """Covalent's `/info` shape: a parameter the initializer fills in shows the value it gets, never `null`."""
    feed_parameters = api_description(shop.spec, {"currency": value})["paths"]["/feed"]["parameters"]

    assert feed_parameters["topic"] == {"type": "str", "default": None, "auto": False}
    currency = feed_parameters["currency"]
    assert (currency["type"], currency["auto"]) == ("str", True)
    if shown is None:  # cut to 500 characters
        assert len(currency["default"]) <= 500
        assert currency["default"].startswith("'xxx")
    elif isinstance(value, _ReprFails):  # its address follows
        assert currency["default"].startswith(shown)
    else:
        assert currency["default"] == shown


def test_service_openapi_summary_and_description_leave_out_the_yaml(document: dict[str, Any]) -> None:
    get = document["paths"]["/items/{item_id}"]["get"]
    assert get["summary"] == "Fetches one item."
    assert get["description"] == "Looks it up by id."
    put = document["paths"]["/stock/{sku}"]["put"]
    assert put["summary"] == "Sets the stock of one item."
    assert "description" not in put
    assert "description" not in document["paths"]["/count"]["get"]
    assert "---" not in str(document)
    assert "tags:" not in str(document)


def test_service_openapi_merges_docstring_yaml_into_the_operation(document: dict[str, Any]) -> None:
    get = document["paths"]["/items/{item_id}"]["get"]
    assert get["tags"] == ["items"]
    assert get["responses"]["404"] == {"description": "No such item"}
    assert set(get["responses"]) == {"200", "404", "422", "4XX", "5XX"}
    returned = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert returned == {"anyOf": [{"$ref": "#/components/schemas/Item"}, {"type": "null"}]}


def test_service_openapi_uses_the_method_entry_of_per_method_yaml(document: dict[str, Any]) -> None:
    put = document["paths"]["/stock/{sku}"]["put"]
    assert put["tags"] == ["stock"]
    ok = put["responses"]["200"]
    assert ok["description"] == "The new stock"
    assert ok["content"]["application/json"]["schema"]["type"] == "array"  # ours, kept under the user's update


def test_service_openapi_names_clashing_models_apart(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas) == {"Address", "ErrorResponse", "Item", "Item_2"}
    assert set(schemas["Item"]["properties"]) == {"name", "address"}
    assert schemas["Item"]["properties"]["address"] == {"$ref": "#/components/schemas/Address"}
    assert set(schemas["Item_2"]["properties"]) == {"sku"}
    stock = document["paths"]["/stock/{sku}"]["put"]
    assert json_body(stock)["properties"]["other"] == {"$ref": "#/components/schemas/Item_2"}
    returned = stock["responses"]["200"]["content"]["application/json"]["schema"]
    assert returned["items"] == {"$ref": "#/components/schemas/Item_2"}
    added = document["paths"]["/items"]["post"]
    assert json_body(added)["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Item"}


def test_service_openapi_streaming_answers_text(document: dict[str, Any]) -> None:
    ok = document["paths"]["/feed"]["post"]["responses"]["200"]
    assert ok["content"] == {
        "text/plain": {"schema": {"type": "string"}},
        "text/event-stream": {"schema": {"type": "string"}},
    }


def test_service_openapi_errors_share_the_envelope(document: dict[str, Any]) -> None:
    envelope = document["components"]["schemas"]["ErrorResponse"]
    assert envelope["properties"]["error"]["required"] == ["code", "message"]
    for path, methods in document["paths"].items():
        for operation in methods.values():
            responses = operation["responses"]
            assert "5XX" in responses, path
            ref = responses["5XX"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorResponse"


def test_service_openapi_operation_ids_are_unique_and_safe(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for methods in document["paths"].values() for operation in methods.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", operation_id) for operation_id in ids)
    assert document["paths"]["/items"]["post"]["operationId"] == "add_items"


def test_service_openapi_documents_ping(document: dict[str, Any]) -> None:
    ping = document["paths"]["/ping"]["get"]
    assert ping["tags"] == ["service"]
    assert ping["responses"]["200"]["content"]["application/json"]["schema"]["required"] == ["status"]


def test_service_openapi_asks_for_a_token_when_auth_is_on(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}, {"apiKey": []}]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    assert (schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("header", "x-api-key")


def test_service_openapi_asks_for_nothing_when_auth_is_off() -> None:
    document = valid(service_openapi(public.spec, server_url="http://localhost:8000"))
    assert "security" not in document
    assert "securitySchemes" not in document["components"]
    assert document["servers"] == [{"url": "http://localhost:8000"}]
    assert set(document["paths"]) == {"/", "/ping"}


def test_service_openapi_does_not_change_the_spec() -> None:
    before = shop.spec.model_dump()
    service_openapi(shop.spec)
    assert shop.spec.model_dump() == before


def test_docs_urls_agree_with_the_prefix() -> None:
    assert service_docs_url("/greeter") == "/greeter/docs"
    assert service_spec_url("/greeter") == "/greeter/docs/specs.json"
    assert service_spec_url("/") == SERVICE_SPEC_PATH
    assert INDEX_URL == "/docs"
    assert ASSETS_URL == "/-/docs/assets"


def local_urls(page: str) -> list[str]:
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls
    for url in urls:
        assert "http" not in url, url
        assert url.startswith("/"), url
    return urls


def test_swagger_ui_html_loads_local_assets_only() -> None:
    page = swagger_ui_html(title="shop", spec_url="/shop/docs/specs.json", assets_url=ASSETS_URL).decode()
    urls = local_urls(page)
    assert f"{ASSETS_URL}/swagger-ui.css" in urls
    assert f"{ASSETS_URL}/swagger-ui-bundle.js" in urls
    assert '"url": "/shop/docs/specs.json"' in page
    assert '"dom_id": "#swagger-ui"' in page
    assert '"persistAuthorization": true' in page
    assert '"validatorUrl": null' in page
    assert "http" not in page


def test_swagger_ui_html_escapes_title_and_urls() -> None:
    page = swagger_ui_html(
        title="<b>x</b>", spec_url='/a"</script><script>alert(1)//', assets_url='/x"><img src=y>'
    ).decode()
    assert "<b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert page.count("</script>") == 2  # the bundle's and ours; the URL cannot close the element
    assert "alert(1)" in page
    assert "<script>alert" not in page
    assert "<img" not in page
    assert '/x&quot;&gt;&lt;img src=y&gt;/swagger-ui.css"' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
        ("favicon-16x16.png", "image/png"),
    ],
)
def test_swagger_asset_serves_allowed_files(name: str, content_type: str) -> None:
    asset = swagger_asset(name)
    assert asset is not None
    content, served_type = asset
    assert served_type == content_type
    assert len(content) > 100
    if content_type == "image/png":
        assert content.startswith(b"\x89PNG")


def test_swagger_asset_reads_each_file_once() -> None:
    first = swagger_asset("swagger-ui.css")
    second = swagger_asset("swagger-ui.css")
    assert first is not None
    assert second is not None
    assert first[0] is second[0]


@pytest.mark.parametrize(
    "name",
    ["../pyproject.toml", "../../pyproject.toml", "/etc/passwd", "swagger-ui.js", "index.css", "LICENSE", "", "."],
)
def test_swagger_asset_refuses_names_off_the_allow_list(name: str) -> None:
    assert swagger_asset(name) is None


def test_docs_index_html_links_each_service() -> None:
    page = docs_index_html(
        [("shop", "/shop/docs", "A shop.\n\nSells things."), ("<evil>", '/e"vil/docs', "<script>x</script>")]
    ).decode()
    local_urls(page)
    assert '<a href="/shop/docs">shop</a>' in page
    assert "A shop." in page
    assert "Sells things" not in page
    assert "<evil>" not in page
    assert "&lt;evil&gt;" in page
    assert 'href="/e&quot;vil/docs"' in page
    assert "<script>" not in page
    assert "No services deployed" not in page


def test_docs_index_html_says_how_to_deploy_when_empty() -> None:
    page = docs_index_html([]).decode()
    assert "No services deployed" in page
    assert "fnserve deploy app.py:service" in page
    local_urls(page)


class Node(BaseModel):
    value: int
    children: list["Node"] = []


class Trees:
    @fs.endpoint("/trees/{tree_id}", method="PATCH")
    def replace(self, tree_id: str, node: Node) -> list[Node]:
        """Replaces a tree.
        ---
        parameters:
          - name: tree_id
            in: path
            description: Which tree
          - name: x-trace
            in: header
            schema: {type: string}
        """
        return [node]


trees = fs.service(name="trees")(Trees)  # mypy ignores class decorators' return types, so call it


def test_service_openapi_merges_yaml_parameters_by_name_and_location() -> None:
    document = valid(service_openapi(trees.spec))
    operation = document["paths"]["/trees/trees/{tree_id}"]["patch"]
    assert operation["operationId"] == "replace"
    assert operation["parameters"] == [
        {"name": "tree_id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Which tree"},
        {"name": "x-trace", "in": "header", "schema": {"type": "string"}},
    ]


def test_service_openapi_hoists_recursive_models() -> None:
    document = valid(service_openapi(trees.spec))
    node = document["components"]["schemas"]["Node"]
    assert node["properties"]["children"]["items"] == {"$ref": "#/components/schemas/Node"}
    for ref in refs(document):
        resolve(document, ref)
