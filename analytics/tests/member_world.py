"""Two tenants with seats held, for the tests of the member's own page, the
audit log and the walk of every dashboard route (committed rows: sign-in
finds the user's tenant on the operator path).

Acme: `admin`, `member` (a plain user holding two seats on Acme Pro and once
on an old machine), `other` (a plain user holding a seat on Acme Pro) and
`viewer` (read-only, no seat); a second license, Acme CAD, on which only
`other` holds a seat. Globex: its admin (`outsider`) and a license with a seat.
"""

from __future__ import annotations

from django.test import Client

from accounts.models import Role
from accounts.tests.factories import TEST_PASSWORD, UserFactory
from audit.events import Event
from audit.services import audit_record
from coditect.personas import read_only_member, tenant_admin, tenant_member
from licenses.ledger import get_seat_ledger
from licenses.tests.factories import LicenseFactory
from tenants.scope import tenant_scope
from tenants.tests.factories import TenantFactory


def seat(license, user, fingerprint: str) -> str:
    """A live seat of `user` on `license` (the ledger's acquire, as the API's),
    with the audit row acquire writes; its session id."""
    with tenant_scope(license.tenant_id):
        session_id = (
            get_seat_ledger()
            .acquire(
                license_id=license.id,
                tenant_id=license.tenant_id,
                max_seats=license.max_seats,
                fingerprint=fingerprint,
                user_id=str(user.pk),
                ttl=600,
            )
            .lease.session_id
        )
        audit_record(
            action=Event.LEASE_ACQUIRED,
            tenant_id=license.tenant_id,
            user=user,
            target=license,
            details={"session_id": session_id, "fingerprint": fingerprint, "created": True},
        )
    return session_id


def live(license) -> list[str]:
    with tenant_scope(license.tenant_id):
        return [lease.session_id for lease in get_seat_ledger().live_leases(license_id=license.id)]


def build_world() -> dict:
    acme, globex = TenantFactory(name="Acme", slug="acme"), TenantFactory(name="Globex", slug="globex")
    admin = tenant_admin(acme).user
    member = tenant_member(acme).user
    viewer = read_only_member(acme).user
    other = UserFactory(tenant=acme, role=Role.USER, email="other@acme.test")
    outsider = tenant_admin(globex).user
    pro = LicenseFactory(tenant=acme, name="Acme Pro", max_seats=5)
    cad = LicenseFactory(tenant=acme, name="Acme CAD", max_seats=2)
    foreign = LicenseFactory(tenant=globex, name="Globex Sim", max_seats=2)
    with tenant_scope(acme.id):
        # An earlier checkout on a machine that holds no seat now.
        audit_record(
            action=Event.LEASE_ACQUIRED,
            tenant_id=acme.id,
            user=member,
            target=pro,
            details={"session_id": "old-session", "fingerprint": "member-old-tower", "created": True},
        )
    seats = {
        "member-laptop": seat(pro, member, "member-laptop"),
        "member-desktop": seat(pro, member, "member-desktop"),
        "other-pc": seat(pro, other, "other-pc"),
        "other-cad": seat(cad, other, "other-cad"),
        "globex-pc": seat(foreign, outsider, "globex-pc"),
    }
    return {
        "acme": acme,
        "globex": globex,
        "admin": admin,
        "member": member,
        "viewer": viewer,
        "other": other,
        "outsider": outsider,
        "pro": pro,
        "cad": cad,
        "foreign": foreign,
        "seats": seats,
    }


def signed_in(email: str = "admin@acme.test", **client_options) -> Client:
    """A browser signed in to the dashboard with the password (any member;
    `enforce_csrf_checks=True` to have its CSRF token checked)."""
    client = Client(**client_options)
    token = ""
    if client_options.get("enforce_csrf_checks"):
        token = client.get("/dashboard/login/").cookies["csrftoken"].value
    response = client.post(
        "/dashboard/login/", {"email": email, "password": TEST_PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302, response.content
    return client
