"""A license signing key and a scripted event writer for the analytics tests
(the personas are shared: coditect/personas.py)."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

import pytest
from django.utils import timezone

from audit.services import audit_record
from tenants.scope import tenant_scope


@pytest.fixture
def license_signing_key(settings, tmp_path):
    """A license signing key of this test's own, for tests that check out seats."""
    from licenses.tests.signing_helpers import ed25519_key, write_pem

    settings.LICENSE_SIGNING_KMS_KEY = ""
    settings.LICENSE_SIGNING_KEY_FILE = [write_pem(tmp_path / "license-signing.pem", ed25519_key())]


class EventScript:
    """Writes the audit events the lease services write, at times the test
    chooses (the audit service's clock is held at each event's time)."""

    def __init__(self, license) -> None:
        self.license = license

    def _record(self, when: datetime, action: str, *, user=None, license=True, details: dict) -> None:
        with mock.patch.object(timezone, "now", return_value=when), tenant_scope(self.license.tenant_id):
            audit_record(
                action=action,
                tenant_id=self.license.tenant_id,
                user=user,
                target=self.license if license else None,
                details=details,
            )

    def acquire(self, when, session_id, user, machine, *, created=True) -> None:
        details = {"session_id": session_id, "fingerprint": machine, "created": created}
        self._record(when, "lease.acquired", user=user, details=details)

    def deny(self, when, code, user, machine, *, license=True) -> None:
        details = {"code": code, "fingerprint": machine}
        self._record(when, "lease.denied", user=user, license=license, details=details)

    def end(self, when, action, session_id, user, machine, acquired_at, **extra) -> None:
        details = {
            "session_id": session_id,
            "fingerprint": machine,
            "user_id": str(user.pk),
            "acquired_at": acquired_at.isoformat(),
            **extra,
        }
        self._record(when, action, details=details)

    def expire(self, recorded_at, session_id, user, machine, acquired_at, expired_at) -> None:
        self.end(
            recorded_at,
            "lease.expired",
            session_id,
            user,
            machine,
            acquired_at,
            expired_at=expired_at.isoformat(),
        )
