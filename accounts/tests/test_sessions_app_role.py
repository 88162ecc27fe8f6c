"""Issue 13, item 2: the session table is outside row-level security and the
app role reads and writes it. Whatever that role can do to it, no row gives a
cookie that opens the operator admin or another tenant's dashboard.

The rows are read and written as the app role itself (a raw psycopg
connection with the app role's credentials on PostgreSQL; on the embedded
default there are no roles, and the database file is what the app reads).
The control test shows the attack works on Django's own store, so the test
would catch a store that gave cookies away.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.test import Client
from django.urls import reverse

from accounts.models import User
from accounts.sessions import session_key_stored
from accounts.tests.factories import TEST_PASSWORD
from coditect.personas import tenant_admin
from coditect.testing import _test_roles
from tenants.scope import operator_scope
from tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("test_events")]

COOKIE = settings.SESSION_COOKIE_NAME


@pytest.fixture(autouse=True)
def quick_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextmanager
def app_role_sql():
    """A cursor as the role requests connect as, outside Django's ORM."""
    default = connections["default"]
    if default.vendor != "postgresql":
        with default.cursor() as cursor:
            yield cursor
        return
    import psycopg

    params = default.settings_dict
    url = (
        f"postgresql://{_test_roles().app}@{params.get('HOST') or '127.0.0.1'}:"
        f"{params.get('PORT') or 5432}/{params['NAME']}"
    )
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == _test_roles().app
        yield cursor


def session_rows() -> list[tuple[str, str]]:
    with app_role_sql() as sql:
        sql.execute("SELECT session_key, session_data FROM django_session")
        return [(str(key), str(data)) for key, data in sql.fetchall()]


def candidates(rows) -> set[str]:
    """Every value a row holds, whole and in the pieces of a signed value."""
    values = set()
    for row in rows:
        for value in row:
            values.add(value)
            values.update(part for part in value.split(":") if part)
    return values


def with_cookie(value: str) -> Client:
    client = Client()
    client.cookies[COOKIE] = value
    return client


def opens_admin(client: Client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


def opens_dashboard_of(client: Client, tenant) -> bool:
    response = client.get(reverse("dashboard:overview"))
    return response.status_code == 200 and response.wsgi_request.user.tenant_id == tenant.id


@pytest.fixture
def signed_in(committed_db):
    """An operator in the admin and each tenant's admin in its dashboard, each
    signed in through its own sign-in page."""
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    tenant_admin(acme), tenant_admin(globex)
    with operator_scope(), transaction.atomic(using=settings.OPERATOR_DATABASE):
        User.objects.create_user("ops@coditect.test", TEST_PASSWORD, is_staff=True, is_superuser=True)

    operator = Client()
    response = operator.post(
        reverse("admin:login"), {"username": "ops@coditect.test", "password": TEST_PASSWORD, "next": "/"}
    )
    assert response.status_code == 302, response.content
    dashboards = {}
    for tenant in (acme, globex):
        dashboards[tenant.slug] = Client()
        response = dashboards[tenant.slug].post(
            reverse("dashboard:login"), {"email": f"admin@{tenant.slug}.test", "password": TEST_PASSWORD}
        )
        assert response.status_code == 302, response.content
    assert opens_admin(operator)
    assert opens_dashboard_of(dashboards["acme"], acme)
    assert opens_dashboard_of(dashboards["globex"], globex)
    return {"acme": acme, "globex": globex, "operator": operator, "dashboards": dashboards}


def test_the_table_holds_a_keyed_hash_of_each_session_key_not_the_key(signed_in):
    cookies = [signed_in["operator"].cookies[COOKIE].value] + [
        client.cookies[COOKIE].value for client in signed_in["dashboards"].values()
    ]
    stored = {key for key, _ in session_rows()}
    assert not stored & set(cookies)
    assert {session_key_stored(cookie) for cookie in cookies} <= stored


def test_no_value_the_app_role_reads_opens_the_admin_or_a_dashboard(signed_in):
    rows = session_rows()
    assert len(rows) >= 3
    for value in candidates(rows):
        client = with_cookie(value)
        assert not opens_admin(client), value
        assert not opens_dashboard_of(client, signed_in["acme"]), value
        assert not opens_dashboard_of(client, signed_in["globex"]), value


def test_session_data_copied_into_the_attackers_own_session_opens_nothing(signed_in):
    # The attacker is Globex's admin, signed in with a cookie of their own; as
    # the app role they give every row, theirs included, each row's data in turn.
    attacker = signed_in["dashboards"]["globex"]
    for _, data in session_rows():
        with app_role_sql() as sql:
            sql.execute("UPDATE django_session SET session_data = %s", [data])
        assert not opens_admin(attacker)
        assert not opens_dashboard_of(attacker, signed_in["acme"])


def test_a_row_inserted_under_a_key_of_the_attackers_choice_opens_nothing(signed_in):
    chosen = "attackerchoseneverycharacter0123"
    forged_keys = [chosen, hashlib.sha256(chosen.encode()).hexdigest()[:40]]
    for _, data in session_rows():
        with app_role_sql() as sql:
            for key in forged_keys:
                sql.execute("DELETE FROM django_session WHERE session_key = %s", [key])
                sql.execute(
                    "INSERT INTO django_session (session_key, session_data, expire_date) "
                    "VALUES (%s, %s, CURRENT_TIMESTAMP + interval '1 day')"
                    if connections["default"].vendor == "postgresql"
                    else "INSERT INTO django_session (session_key, session_data, expire_date) "
                    "VALUES (%s, %s, datetime('now', '+1 day'))",
                    [key, data],
                )
        client = with_cookie(chosen)
        assert not opens_admin(client)
        assert not opens_dashboard_of(client, signed_in["acme"])


def test_signing_out_deletes_the_row_and_the_cookie_stops_working(signed_in):
    client = signed_in["dashboards"]["acme"]
    cookie = client.cookies[COOKIE].value
    client.post(reverse("dashboard:logout"))
    assert session_key_stored(cookie) not in {key for key, _ in session_rows()}
    assert not opens_dashboard_of(with_cookie(cookie), signed_in["acme"])


def test_control_with_djangos_own_store_a_row_read_is_an_operator_login(signed_in, settings):
    """Why this store exists: the same read on Django's store opens the admin."""
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    operator = Client()
    operator.post(reverse("admin:login"), {"username": "ops@coditect.test", "password": TEST_PASSWORD})
    assert any(opens_admin(with_cookie(value)) for value in candidates(session_rows()))
