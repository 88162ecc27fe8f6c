"""The session store of the admin site and the tenant dashboard: Django's
database sessions, kept so that the app role cannot use what it can read.

`django_session` is not tenant-owned, so row-level security does not cover it
and the app role reads and writes every row (it must: the dashboard's sessions
are saved as that role). A row of Django's own store is a login: its key is
the cookie. Here a row holds neither a cookie nor anything that becomes one:

- the key column holds HMAC-SHA256(session key) under a key derived from
  SECRET_KEY, so a key read from the table is not a cookie, and one cannot
  be made up for a key of one's choosing without SECRET_KEY;
- the data is signed (as Django signs it) with a salt that includes the
  session key, so data copied into another row (the attacker's own session,
  or a row they insert) fails its signature there and reads as an empty,
  signed-out session.

What the app role can still do is delete or expire rows (sign people out).
Rotating SECRET_KEY ends every session; switching to this store from
Django's ended the sessions made before it (migration 0004 deletes them).
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.utils import timezone
from django.utils.crypto import salted_hmac

# django_session.session_key is VARCHAR(40): 160 bits of the HMAC.
STORED_KEY_LENGTH = 40
_KEY_PURPOSE = "coditect.accounts.sessions.stored-key"


def session_key_stored(session_key: str) -> str:
    """What the table holds for a session key (the cookie's value)."""
    return salted_hmac(_KEY_PURPOSE, session_key, algorithm="sha256").hexdigest()[:STORED_KEY_LENGTH]


class SessionStore(db.SessionStore):
    @property
    def key_salt(self) -> str:
        # The data of one session verifies under that session's key only.
        return f"{super().key_salt}:{self.session_key or ''}"

    def _stored(self, session_key: str | None = None) -> str:
        return session_key_stored(session_key if session_key is not None else self.session_key)

    def _get_session_from_db(self):
        try:
            return self.model.objects.get(session_key=self._stored(), expire_date__gt=timezone.now())
        except self.model.DoesNotExist:
            self._session_key = None
            return None

    async def _aget_session_from_db(self):
        try:
            return await self.model.objects.aget(session_key=self._stored(), expire_date__gt=timezone.now())
        except self.model.DoesNotExist:
            self._session_key = None
            return None

    def exists(self, session_key):
        return self.model.objects.filter(session_key=self._stored(session_key)).exists()

    async def aexists(self, session_key):
        return await self.model.objects.filter(session_key=self._stored(session_key)).aexists()

    def create_model_instance(self, data):
        session_key = self._get_or_create_session_key()
        return self.model(
            session_key=self._stored(session_key),
            session_data=self.encode(data),
            expire_date=self.get_expiry_date(),
        )

    async def acreate_model_instance(self, data):
        session_key = await self._aget_or_create_session_key()
        return self.model(
            session_key=self._stored(session_key),
            session_data=self.encode(data),
            expire_date=await self.aget_expiry_date(),
        )

    def delete(self, session_key=None):
        session_key = session_key if session_key is not None else self.session_key
        if session_key is not None:
            self.model.objects.filter(session_key=self._stored(session_key)).delete()

    async def adelete(self, session_key=None):
        session_key = session_key if session_key is not None else self.session_key
        if session_key is not None:
            await self.model.objects.filter(session_key=self._stored(session_key)).adelete()
