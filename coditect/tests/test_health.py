import pytest
from django.db import connections

from coditect.testing import TcpProxy


def test_health_answers_without_touching_dependencies(client):
    # No database access is allowed in this test: a query would raise.
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-ID"]


@pytest.mark.django_db(databases="__all__")
def test_ready_answers_when_dependencies_answer(client, settings):
    response = client.get("/ready")
    assert response.status_code == 200
    assert "database" in response.json()["checks"]
    if settings.REDIS_URL:
        assert "redis" in response.json()["checks"]


def test_ready_answers_503_while_postgresql_is_unreachable_and_200_when_back(committed_db, client):
    default = connections["default"]
    if default.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    proxy = TcpProxy(
        default.settings_dict.get("HOST") or "127.0.0.1", int(default.settings_dict.get("PORT") or 5432)
    )
    original = dict(default.settings_dict)
    default.close()
    default.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        assert client.get("/ready").status_code == 200

        proxy.cut()
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["code"] == "service_unavailable"
        assert "database" in body["error"]["details"]["failed"]
        assert set(body["error"]) == {"code", "message", "details"}

        proxy.restore()
        assert client.get("/ready").status_code == 200
    finally:
        default.close()
        default.settings_dict.clear()
        default.settings_dict.update(original)
        proxy.close()


def test_request_id_is_taken_from_the_load_balancer_when_sane(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"})["X-Request-ID"] == "abc-123"
    assert client.get("/health", headers={"X-Request-ID": "bad id\n"})["X-Request-ID"] != "bad id\n"


@pytest.mark.django_db(databases="__all__")
def test_metrics_are_exported(client, settings):
    settings.METRICS_TOKEN = "metrics-token"
    response = client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})
    assert response.status_code == 200
    assert (
        b"django_http_requests_total_by_method_total" in response.content
        or b"django_http" in response.content
    )


@pytest.mark.django_db(databases="__all__")
def test_ready_answers_503_while_redis_is_unreachable_and_200_when_back(client, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs Redis")
    proxy = TcpProxy("127.0.0.1", 6379)
    settings.REDIS_URL = f"redis://127.0.0.1:{proxy.port}/0"
    try:
        assert client.get("/ready").status_code == 200
        proxy.cut()
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "service_unavailable"
        assert "redis" in response.json()["error"]["details"]["failed"]
        proxy.restore()
        assert client.get("/ready").status_code == 200
    finally:
        proxy.close()


@pytest.mark.django_db(databases="__all__")
def test_ready_checks_the_operator_path_too(client, settings):
    if settings.OPERATOR_DATABASE == "default":
        pytest.skip("a single-role install has no operator path of its own")
    assert "operator_database" in client.get("/ready").json()["checks"]


def test_unknown_api_routes_answer_in_the_error_shape_with_debug_on_too(client, settings):
    settings.DEBUG = True  # as `make run` serves: Django's HTML debug page would list the routes
    for path in ("/api/v1/no-such-thing", "/api/v1/licenses/acquire/extra", "/.well-known/nothing"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_unknown_api_routes_answer_in_the_error_shape(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # Pages keep Django's own 404 page.
    assert client.get("/no-such-page").status_code == 404


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
@pytest.mark.parametrize("method", ["post", "delete", "put", "options"])
def test_a_probe_answers_another_method_with_405_in_the_error_shape(client, db, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
