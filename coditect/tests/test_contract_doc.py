"""docs/contract.md, the contract a client in another language is written to,
agrees with the code: every error code the server can answer, every route of
the URL resolver under the API, the key set paths and the probes, and every
method of every API operation appear in it."""

import re
from pathlib import Path

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from core.errors import ERROR_STATUS

pytestmark = pytest.mark.embedded

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
# The routes of the contract: the API, the key set, the probes. The admin, the
# dashboard and the schema/docs pages are not part of it.
CONTRACT_PREFIXES = ("api/v1/", ".well-known/", "health", "ready", "metrics")


@pytest.fixture(scope="module")
def contract() -> str:
    return CONTRACT.read_text(encoding="utf-8")


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and not str(pattern.pattern).startswith("^"):
            yield prefix + str(pattern.pattern)  # path() routes; the re_path catch-all is no route


def contract_routes() -> list[str]:
    """Each route as the contract writes it: under /api/v1 without the prefix,
    a path parameter as {name}."""
    routes = set()
    for route in _routes(get_resolver().url_patterns):
        if not route.startswith(CONTRACT_PREFIXES):
            continue
        route = "/" + route.removeprefix("api/v1/")
        routes.add(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return sorted(routes)


def _written(route: str) -> re.Pattern:
    # `{invite_id}` may be written `{id}`; the route ends where the path does.
    parts = re.split(r"\{\w+\}", route)
    return re.compile(r"\{\w+\}".join(re.escape(part) for part in parts) + r"(?![\w/.-])")


def test_the_resolver_has_the_routes_this_test_checks():
    routes = contract_routes()
    for route in (
        "/licenses/acquire",
        "/invites/{invite_id}",
        "/.well-known/jwks.json",
        "/health",
        "/metrics",
    ):
        assert route in routes
    assert len(routes) >= 15


@pytest.mark.parametrize("code", sorted(ERROR_STATUS))
def test_every_error_code_is_in_the_contracts_error_list(contract, code):
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", contract, re.M))
    assert code in rows, f"docs/contract.md's error list lacks {code}"
    assert int(rows[code]) == ERROR_STATUS[code], f"{code}: the contract says {rows[code]}"


def test_the_contracts_error_list_names_no_code_the_server_lacks(contract):
    listed = set(re.findall(r"^\| `([a-z_]+)` \| \d{3} \|", contract, re.M))
    assert listed <= set(ERROR_STATUS), listed - set(ERROR_STATUS)


@pytest.mark.parametrize("route", contract_routes())
def test_every_route_is_in_the_contract(contract, route):
    assert _written(route).search(contract), f"docs/contract.md does not name {route}"


def test_every_api_operation_is_in_the_contract_with_its_method(contract, client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    missing = []
    for path, methods in schema["paths"].items():
        for method in methods:
            written = _written(f"{method.upper()} {path.removeprefix('/api/v1')}")
            if not written.search(contract):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"docs/contract.md does not name {missing}"


def test_a_route_is_matched_whole_not_as_a_prefix_of_another():
    assert _written("/invites/{invite_id}").search("`DELETE /invites/{id}`")
    assert not _written("/auth/me").search("`GET /auth/members`")
    assert not _written("/invites").search("`GET /invites/{id}`")
    assert not _written("GET /licenses/status").search("`POST /licenses/status`")
