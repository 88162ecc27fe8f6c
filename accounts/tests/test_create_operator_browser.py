"""The first operator of a production install, end to end on PostgreSQL with
the three roles: migrations ran as the owner role, `manage.py create_operator`
runs as production runs it (DEBUG off, the app and operator roles), and the
operator then signs in through the admin's login page in a real browser
(Playwright driving Debian's Chromium) on a gunicorn server with DEBUG off,
and sees the tenant list. Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connections

from accounts.tests.test_create_operator import PASSWORD, manage, production_environment
from coditect.testing import LiveServer, _test_roles, chromium_context
from licenses.tests.test_admin_browser import ARTIFACTS
from tenants.models import Tenant
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

EMAIL = "first.operator@example.com"


@pytest.fixture
def production_server(committed_db, tmp_path):
    """The server as production runs it: DEBUG off (secure cookies: the
    browser reaches it as http://localhost, a secure context)."""
    (tmp_path / "server").mkdir()
    server = LiveServer(tmp_path / "server")
    server.env.update(DEBUG="0", ALLOWED_HOSTS="localhost,127.0.0.1")
    server.url = server.url.replace("127.0.0.1", "localhost")
    # As the image is built (deploy/Dockerfile): the static files collected beforehand.
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=settings.BASE_DIR,
        env={**{k: v for k, v in server.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.forget_redis_keys()


def owner_of(table: str) -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = %s", [table]
        )
        return cursor.fetchone()[0]


def test_create_operator_then_the_operator_signs_in_to_the_admin_in_a_browser(production_server, tmp_path):
    if connections["default"].vendor != "postgresql":
        pytest.skip("the three roles are PostgreSQL's")
    roles = _test_roles()
    # The three roles: the owner ran the migrations; the server and the command use app and operator.
    assert owner_of(Tenant._meta.db_table) == roles.owner
    env = production_environment(tmp_path)
    assert env["DATABASE_URL"].startswith(f"postgresql://{roles.app}@")
    assert env["DATABASE_OPERATOR_URL"].startswith(f"postgresql://{roles.operator}@")
    assert "DEBUG" not in env
    TenantFactory(name="Acme Industries", slug="acme")
    TenantFactory(name="Globex Corporation", slug="globex")

    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    result = manage(env, "create_operator", "--email", EMAIL, "--password-file", str(password_file))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["email"] == EMAIL

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    admin = f"{production_server.url}/{settings.ADMIN_URL}"
    with chromium_context(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        styles = []
        page.on("response", lambda r: styles.append(r) if r.url.endswith(".css") else None)
        page.goto(f"{admin}login/")
        assert styles and all(r.status == 200 for r in styles)  # the admin's own look, served by the server
        page.fill("input[name=username]", EMAIL)
        page.fill("input[name=password]", "not the password")
        page.click("input[type=submit]")
        assert page.url.startswith(f"{admin}login/")  # a wrong password does not get in
        page.fill("input[name=username]", EMAIL)
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(admin)
        page.screenshot(path=str(ARTIFACTS / "first-operator-home.png"), full_page=True)

        page.goto(f"{admin}tenants/tenant/")
        page.screenshot(path=str(ARTIFACTS / "first-operator-tenants.png"), full_page=True)
        body = page.content()
        assert page.url == f"{admin}tenants/tenant/"
        assert "Acme Industries" in body and "Globex Corporation" in body
        cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
        assert (
            cookies["sessionid"]["secure"] and cookies["sessionid"]["httpOnly"]
        )  # DEBUG off, as in production
