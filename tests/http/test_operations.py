"""/health, the API docs and the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from tests.http.helpers import CUSTOMERS


async def test_health_is_healthy(client):
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "healthy"}


@pytest.mark.parametrize(
    ("path", "script"),
    [
        ("/docs", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
        ("/redoc", "/static/vendor/redoc/redoc.standalone.js"),
        ("/schema/swagger", "/static/vendor/swagger-ui/swagger-ui-bundle.js"),
        ("/schema/redoc", "/static/vendor/redoc/redoc.standalone.js"),
    ],
)
async def test_the_api_docs_load_only_what_the_service_serves_itself(client, path, script):
    page = await client.get(path)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower() and "custsync" in page.text
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert script in sources
    assert [s for s in sources if not s.startswith("/") and s != "data:,"] == [], "the page loads from another host"
    for source in (s for s in sources if s.startswith("/")):
        asset = await client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 10_000, source


async def test_the_vendored_assets_ship_with_their_licences(client):
    for path in ("/static/vendor/swagger-ui/LICENSE", "/static/vendor/redoc/LICENSE", "/static/vendor/VERSIONS"):
        assert (await client.get(path)).status_code == 200, path


async def test_the_root_leads_to_the_api_docs(client):
    response = await client.get("/", follow_redirects=False)

    assert response.status_code in (302, 307) and response.headers["location"] == "/docs"


@pytest.mark.parametrize("path", ["/schema/nope", "/schema/swagger.html", "/static/vendor/nope.js", "/docs/nope"])
async def test_an_unknown_docs_path_is_a_problem_not_a_page(client, path):
    response = await client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.fixture
async def openapi(client) -> dict:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_openapi_document_is_well_formed(openapi):
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] == "custsync" and openapi["info"]["version"]
    for path, item in openapi["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                assert operation["responses"], (method, path)
                assert operation.get("operationId"), (method, path)
    for ref in refs(openapi):
        assert resolve(openapi, ref) is not None, ref


async def test_openapi_lists_every_customer_route_with_its_methods(openapi):
    paths = openapi["paths"]

    assert {"get", "post"} <= set(paths[CUSTOMERS])
    assert {"get", "put", "patch", "delete"} <= set(paths[f"{CUSTOMERS}/{{customer_id}}"])
    assert "get" in paths[f"{CUSTOMERS}/{{customer_id}}/sync-events"]
    assert "post" in paths["/api/v1/webhooks/{system}"]
    assert "get" in paths["/health"]


async def test_openapi_documents_the_list_parameters_and_the_if_match_header(openapi):
    list_params = {p["name"]: p for p in openapi["paths"][CUSTOMERS]["get"]["parameters"]}
    patch_params = {p["name"].lower(): p for p in openapi["paths"][f"{CUSTOMERS}/{{customer_id}}"]["patch"]["parameters"]}

    assert {"limit", "cursor", "email"} <= set(list_params)
    assert list_params["limit"]["schema"].get("maximum") == 100
    assert patch_params["if-match"]["in"] == "header"


async def test_openapi_hides_the_dev_routes_and_the_docs_redirects_in_production(openapi):
    assert not [p for p in openapi["paths"] if p.startswith("/dev") or p in ("/docs", "/redoc")]


async def test_openapi_lists_the_dev_routes_when_they_are_mounted(dev_client):
    paths = (await dev_client.get("/schema/openapi.json")).json()["paths"]

    assert {"/dev/stripe/customers", "/dev/stripe/customers/{customer_id}"} <= set(paths)
