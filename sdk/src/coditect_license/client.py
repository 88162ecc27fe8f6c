"""LicenseClient: check out a seat, keep it, borrow it, give it back.

    client = LicenseClient("https://licenses.example.com", key, PasswordLogin(email, password),
                           cache_dir=app_data_dir / "license")
    with client:                       # acquires; releases on leaving
        if client.is_licensed(): ...

One client holds at most one lease (one seat of one license for one machine).
A background thread beats at the interval the server hands out; when the
server no longer knows the session (expired, or its ledger lost it) the client
acquires again on its own and calls `on_reacquire(old, new)`. When the server
cannot be reached the application stays licensed from the last token, checked
locally, until that token's `exp`.

Tokens verify only under the keys the application trusts (coditect_license.trust):
pass `trusted_root_keys` (the server's key set root key; new license signing
keys are then accepted through the signed key set) and/or `trusted_jwks`.
Without either the constructor raises TrustNotConfigured, unless
`insecure_trust_on_first_use=True` (development only; it warns at every start).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import platform
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import jwt

from coditect_license import __version__
from coditect_license.cache import CacheEntry, OfflineCache, normalize_license_key
from coditect_license.credentials import Credentials
from coditect_license.errors import (
    CacheTampered,
    ClockSetBack,
    ConnectionFailed,
    KeyNotTrusted,
    LicenseError,
    MaintenanceExpired,
    NoSeatsAvailable,
    NotAuthenticated,
    NotLicensed,
    ProtocolError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SessionNotFound,
    TicketNotFound,
    TokenInvalid,
)
from coditect_license.fingerprint import DEFAULT_SALT
from coditect_license.fingerprint import fingerprint as default_fingerprint
from coditect_license.tokens import Claims, KeySet, maintenance_check, version_tuple
from coditect_license.transport import HttpApi, Interrupted, RetryPolicy
from coditect_license.trust import INSECURE_WARNING, KEYSET_PATHS, Trust, verify_signed_keyset

logger = logging.getLogger("coditect_license")

ACQUIRE_PATH = "/api/v1/licenses/acquire"
HEARTBEAT_PATH = "/api/v1/licenses/heartbeat"
RELEASE_PATH = "/api/v1/licenses/release"
BORROW_PATH = "/api/v1/licenses/borrow"
STATUS_PATH = "/api/v1/licenses/status"
JWKS_PATHS = ("/.well-known/jwks.json", "/api/v1/.well-known/jwks.json")

# Failures that say nothing about the lease: the server or the way to it is
# unwell. The lease is kept (offline) and the next beat tries again.
TRANSIENT = (ConnectionFailed, ServiceUnavailable, ServerError, RateLimited, ProtocolError)
# Written to disk at most this often when only the last-seen time moved.
LAST_SEEN_PERSIST_SECONDS = 60.0
# A floor under the server's interval, so a bad answer cannot make the thread spin.
MIN_HEARTBEAT_INTERVAL = 0.1


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ProtocolError("A time in the answer is not an ISO 8601 string.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProtocolError("A time in the answer is not ISO 8601.") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True)
class Lease:
    """One seat held by this client. `expires_at` is when the server frees it
    without a heartbeat; `token_expires_at` is how long the application may
    run offline. `offline` is true while the server has not confirmed it."""

    session_id: str
    license_id: str
    expires_at: datetime
    heartbeat_interval: float
    token_expires_at: datetime
    seats_used: int | None = None
    seats_max: int | None = None
    license_expires_at: datetime | None = None
    entitlements: dict[str, Any] = field(default_factory=dict)
    borrowed_until: datetime | None = None
    created: bool = False
    offline: bool = False
    token: str = field(default="", repr=False)
    # The end of the grace period after `license_expires_at` (the token's
    # `grace_until`); None without one.
    license_grace_until: datetime | None = None
    # One of the license's overdraft seats, granted past its seats (the
    # token's `ovr`): counted for the vendor's true-up.
    overdraft: bool = False

    @property
    def is_borrowed(self) -> bool:
        return self.borrowed_until is not None

    @property
    def in_grace(self) -> bool:
        """The license has expired and runs in its grace period: tell the user it needs renewing."""
        now = datetime.now(UTC)
        return (
            self.license_expires_at is not None
            and self.license_grace_until is not None
            and self.license_expires_at <= now < self.license_grace_until
        )

    def to_cache(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "license_id": self.license_id,
            "expires_at": _iso(self.expires_at),
            "heartbeat_interval": self.heartbeat_interval,
            "token_expires_at": _iso(self.token_expires_at),
            "seats_used": self.seats_used,
            "seats_max": self.seats_max,
            "license_expires_at": _iso(self.license_expires_at),
            "entitlements": self.entitlements,
            "borrowed_until": _iso(self.borrowed_until),
        }

    @classmethod
    def from_cache(cls, meta: Mapping[str, Any], *, token: str, claims: Claims) -> Lease:
        return cls(
            session_id=claims.session_id,
            license_id=claims.license_id,
            expires_at=_time(meta.get("expires_at")) or datetime.fromtimestamp(claims.expires_at, UTC),
            heartbeat_interval=float(meta.get("heartbeat_interval") or 60),
            token_expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            seats_used=meta.get("seats_used"),
            seats_max=meta.get("seats_max"),
            license_expires_at=_time(meta.get("license_expires_at")),
            entitlements=claims.entitlements,
            borrowed_until=_time(meta.get("borrowed_until")),
            offline=True,
            token=token,
            license_grace_until=(
                datetime.fromtimestamp(claims.grace_until, UTC) if claims.grace_until is not None else None
            ),
        )


@dataclass(frozen=True)
class QueuePlace:
    """Where an `acquire(wait=...)` stands in the license's queue: its
    `position` (1: next), the tickets `waiting`, and how long it has waited."""

    position: int
    waiting: int
    waited: float


@dataclass(frozen=True)
class LicenseStatus:
    """What GET /licenses/status says of this client's license."""

    license_id: str
    name: str
    state: str
    expires_at: datetime | None
    entitlements: dict[str, Any]
    seats_used: int
    seats_max: int
    leases: list[dict[str, Any]]  # one page of the leases you may see, oldest first
    raw: dict[str, Any] = field(repr=False)
    # The next page of leases: pass it to status(cursor=...); None on the last.
    leases_next_cursor: str | None = None


class LicenseClient:
    """See the module docstring. Every public method is safe to call from
    any thread; callbacks run on the heartbeat thread and must not block long."""

    def __init__(
        self,
        base_url: str,
        license_key: str,
        credentials: Credentials | None = None,
        *,
        fingerprint: str | None = None,
        fingerprint_salt: str = DEFAULT_SALT,
        cache_dir: str | os.PathLike[str] | None = None,
        on_reacquire: Callable[[Lease, Lease], None] | None = None,
        on_lost: Callable[[LicenseError], None] | None = None,
        client_info: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] = (5.0, 15.0),
        retry: RetryPolicy | None = None,
        heartbeat_jitter: float = 0.1,
        renew_fraction: float = 0.5,
        issuer: str | None = None,
        trusted_jwks: Mapping[str, Any] | None = None,
        trusted_root_keys: Mapping[str, Any] | None = None,
        insecure_trust_on_first_use: bool = False,
        keyset_url: str | None = None,
        jwks_url: str | None = None,
        verify: bool | str = True,
        clock: Callable[[], float] = time.time,
        clock_leeway: float = 300.0,
        release_at_exit: bool = True,
        rng: random.Random | None = None,
        app_version: str | None = None,
        app_released: date | str | None = None,
    ) -> None:
        if not license_key or not license_key.strip():
            raise ValueError("license_key is required")
        if not 0 <= heartbeat_jitter < 1:
            raise ValueError("heartbeat_jitter is a fraction in [0, 1)")
        if not 0 < renew_fraction < 1:
            raise ValueError("renew_fraction is a fraction in (0, 1)")
        # The application's own version and release day, checked against the
        # license's maintenance terms (ver_max, maint) of every token.
        if app_version is not None:
            version_tuple(app_version)  # a ValueError now, not at the first token
        if isinstance(app_released, str):
            app_released = date.fromisoformat(app_released)
        self.app_version = app_version
        self.app_released = app_released
        # First: a client that could not check a token must not exist at all.
        self._trust = Trust(
            jwks=trusted_jwks,
            root_keys=trusted_root_keys,
            insecure_trust_on_first_use=insecure_trust_on_first_use,
        )
        if self._trust.insecure:
            logger.warning(INSECURE_WARNING)
        self.base_url = base_url.rstrip("/")
        self.license_key = normalize_license_key(license_key)
        self.fingerprint = fingerprint or default_fingerprint(salt=fingerprint_salt)
        self._credentials = credentials
        self._on_reacquire = on_reacquire
        self._on_lost = on_lost
        # What the server may show beside the lease; nothing that identifies the machine.
        self._client_info = {
            "sdk": f"coditect-license-python/{__version__}",
            "os": platform.system() or "unknown",
            **dict(client_info or {}),
        }
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._api = HttpApi(self.base_url, timeout=timeout, retry=retry, verify=verify, rng=self._rng)
        self._jitter = heartbeat_jitter
        self._renew_fraction = renew_fraction
        self._issuer = issuer
        self._keyset_url = keyset_url
        self._jwks_url = jwks_url
        self._clock = clock
        self._clock_leeway = clock_leeway
        self._release_at_exit = release_at_exit
        self._cache = (
            OfflineCache(cache_dir, license_key=self.license_key, fingerprint=self.fingerprint)
            if cache_dir is not None
            else None
        )

        # _lock guards the fields below and is never held across network calls;
        # _op_lock serialises what changes the lease (acquire, beat, borrow,
        # release), so a heartbeat's answer is never applied to a lease that a
        # release has already ended.
        self._lock = threading.RLock()
        self._op_lock = threading.RLock()
        self._lease: Lease | None = None
        self._last_seen: float | None = None
        self._persisted_seen = 0.0
        self._cache_loaded = False
        self._cache_entry: CacheEntry | None = None
        self._cache_error: LicenseError | None = None
        self._beater: threading.Thread | None = None
        self._beater_stop: threading.Event | None = None
        self._atexit_hook: Callable[[], None] | None = None
        self._closed = False
        self.heartbeats_sent = 0
        # When the application last said its user was active (report_activity),
        # on the monotonic clock; None: it does not track activity, and the
        # heartbeat reports no idle time (the seat is never idle).
        self._last_activity: float | None = None

        if self.base_url.startswith("http://") and not any(
            host in self.base_url for host in ("://127.0.0.1", "://localhost", "://[::1]")
        ):
            logger.warning("the license server URL is not HTTPS; tokens travel in clear text")

    def __repr__(self) -> str:
        return f"<LicenseClient {self.base_url} key={self.license_key[:9]}…>"

    # --- the lease ------------------------------------------------------------------

    def report_activity(self) -> None:
        """Tell the client the application's user is active now (a key press,
        a click). Once called, each heartbeat reports the seconds since the
        last call; past the license's idle timeout the server ends the seat
        and `on_lost` gets IdleTimeout. Cheap enough for every input event."""
        self._last_activity = time.monotonic()

    def _idle_report(self) -> dict[str, int] | None:
        last = self._last_activity
        if last is None:
            return None
        return {"idle_seconds": max(0, int(time.monotonic() - last))}

    @property
    def lease(self) -> Lease | None:
        with self._lock:
            return self._lease

    def acquire(
        self,
        *,
        allow_offline: bool = True,
        wait: float | None = None,
        on_queued: Callable[[QueuePlace], None] | None = None,
    ) -> Lease:
        """Check out a seat (or get this machine's live one back) and start
        heartbeats. When the server cannot be reached and `allow_offline`, a
        valid cached token stands in until the server answers again.

        With `wait` (seconds), a license whose seats are all taken puts this
        client in its queue: it polls as the server says, calls `on_queued`
        with its place after each answer, and returns the seat when it is
        its turn; NoSeatsAvailable when `wait` runs out first (its place
        lapses on the server by itself). A license that does not queue
        answers QueueFull at once."""
        with self._op_lock:
            self._check_open()
            try:
                lease = self._acquire_online() if wait is None else self._acquire_waiting(wait, on_queued)
            except TRANSIENT as exc:
                lease = self._offline_lease() if allow_offline else None
                if lease is None:
                    raise
                logger.warning(
                    "the license server cannot be reached; running on the cached token",
                    extra={"error": exc.code, "session_id": lease.session_id},
                )
            self._register_atexit()
            self._start_heartbeat()
            return lease

    def release(self) -> bool:
        """Give the seat back (a borrowed one too). True when the server freed a
        live lease; False when there was none (released, expired, unknown)."""
        self._stop_heartbeat()
        with self._op_lock:
            return self._release()

    def borrow(self, hours: int) -> Lease:
        """Keep the seat for offline use for `hours` (up to the license's
        limit). Heartbeats stop; the seat stays taken until the borrow ends or
        `release()` returns it. `close()` keeps a borrowed seat."""
        with self._op_lock:
            self._check_open()
            with self._lock:
                lease = self._lease
            if lease is None:
                raise NotLicensed("acquire() before borrow().")
            try:
                response = self._api.request("POST", BORROW_PATH, json={"hours": hours}, bearer=lease.token)
            except (SessionNotFound, NotAuthenticated):
                fresh = self._acquire_online()
                self._notify_reacquired(lease, fresh)
                response = self._api.request("POST", BORROW_PATH, json={"hours": hours}, bearer=fresh.token)
            borrowed = self._adopt_checkout(response.body, created=False)
        self._stop_heartbeat(join=False)
        logger.info(
            "seat borrowed",
            extra={"session_id": borrowed.session_id, "until": _iso(borrowed.borrowed_until)},
        )
        return borrowed

    def status(self, *, limit: int | None = None, cursor: str | None = None) -> LicenseStatus:
        """The license's state and seats, as the server sees them now, with
        one page of its live leases (the server's default page size unless
        `limit`, 1 to 500); `cursor` is a previous answer's
        `leases_next_cursor`, for the page after it."""
        self._check_open()
        params = {
            name: str(value) for name, value in (("limit", limit), ("cursor", cursor)) if value is not None
        }
        # The key goes in a header, never the URL: URLs end up in access logs.
        response = self._user_request(
            "GET", STATUS_PATH, headers={"X-License-Key": self.license_key}, params=params or None
        )
        try:
            item = response.body["licenses"][0]
            return LicenseStatus(
                license_id=str(item["id"]),
                name=str(item.get("name", "")),
                state=str(item["state"]),
                expires_at=_time(item.get("expires_at")),
                entitlements=dict(item.get("entitlements") or {}),
                seats_used=int(item["seats"]["used"]),
                seats_max=int(item["seats"]["max"]),
                leases=list(item.get("leases") or []),
                raw=dict(item),
                leases_next_cursor=item.get("leases_next_cursor"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProtocolError("The status answer is not what the contract says.") from exc

    # --- answers without the network ---------------------------------------------------

    def verify(self) -> Claims:
        """The current token's claims, checked locally: the lease's token, or
        the cached one when this process holds none. Raises a LicenseError
        subclass saying why not (NotLicensed, TokenExpired, ClockSetBack,
        CacheTampered, TokenInvalid)."""
        with self._lock:
            now = self._clock()
            lease = self._lease
            if lease is not None:
                token, license_id, session_id = lease.token, lease.license_id, lease.session_id
                keyset = self._trust.keyset(now)
            else:
                entry = self._load_cache()
                if entry is None or not entry.token:
                    raise NotLicensed("No lease and no cached license token.")
                token, license_id, session_id = entry.token, entry.license_id, None
                keyset = self._cached_keyset(entry, now)
            if keyset is None:
                raise KeyNotTrusted("No trusted key to verify the token with.")
            claims = keyset.verify(
                token,
                now=now,
                fingerprint=self.fingerprint,
                issuer=self._issuer,
                license_id=license_id,
                session_id=session_id,
                last_seen=self._last_seen,
                leeway=self._clock_leeway,
            )
            self._note_seen(now)
            maintenance_check(claims, app_version=self.app_version, app_released=self.app_released)
            return claims

    def is_licensed(self) -> bool:
        try:
            self.verify()
        except LicenseError as exc:
            logger.debug("not licensed", extra={"reason": exc.code})
            return False
        return True

    def entitlements(self) -> dict[str, Any]:
        """The license's entitlements from the verified token; empty when not licensed."""
        try:
            return dict(self.verify().entitlements)
        except LicenseError:
            return {}

    # --- lifetime ----------------------------------------------------------------------

    def close(self, *, release: bool | None = None) -> None:
        """Stop heartbeats and give the seat back. A borrowed seat is kept
        unless `release=True`; `release=False` keeps any seat (it frees by
        expiry). Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lease = self._lease
        self._unregister_atexit()
        self._stop_heartbeat()
        if release is None:
            release = lease is not None and not lease.is_borrowed
        if release:
            with self._op_lock:
                try:
                    self._release()
                except LicenseError as exc:
                    logger.warning(
                        "release on close failed; the seat frees by expiry", extra={"error": exc.code}
                    )
        elif lease is not None and lease.is_borrowed:
            logger.info("closing with a borrowed seat kept", extra={"session_id": lease.session_id})
        self._api.close()

    def __enter__(self) -> LicenseClient:
        try:
            if self.lease is None:
                self.acquire()
        except BaseException:
            self.close(release=False)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals: acquire, keys, cache ---------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LicenseError("This client is closed.", code="client_closed")

    def _user_request(self, method: str, path: str, **kwargs: Any):
        if self._credentials is None:
            raise NotAuthenticated("This client has no user credentials.")
        for attempt in range(2):
            bearer = self._credentials.bearer(self._api)
            try:
                return self._api.request(method, path, bearer=bearer, **kwargs)
            except NotAuthenticated:
                if attempt:
                    raise
                self._credentials.invalidate(bearer)  # stale access token: refresh once
        raise AssertionError("unreachable")

    def _acquire_waiting(self, wait: float, on_queued: Callable[[QueuePlace], None] | None) -> Lease:
        """Acquire through the license's queue: poll with the ticket until the
        seat is this client's or `wait` runs out (close() stops it too)."""
        started = time.monotonic()
        ticket: str | None = None
        while True:
            extra: dict[str, Any] = {"ticket": ticket} if ticket else {"queue": True}
            try:
                response = self._acquire_request(extra)
            except TicketNotFound:
                ticket = None  # the place lapsed (or the ledger lost it): queue again
                continue
            if response.status != 202:
                return self._acquired(response)
            try:
                body = response.body
                ticket = str(body["ticket"])
                place = QueuePlace(
                    position=int(body["position"]),
                    waiting=int(body["waiting"]),
                    waited=time.monotonic() - started,
                )
                poll_after = max(0.5, float(body["poll_after"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ProtocolError("The queue answer is not what the contract says.") from exc
            logger.info("waiting for a seat", extra={"position": place.position, "waiting": place.waiting})
            if on_queued is not None:
                on_queued(place)
            left = wait - (time.monotonic() - started)
            if left <= 0 or self._closed:
                raise NoSeatsAvailable(
                    f"No seat came free within {wait:g} s (place {place.position} of {place.waiting}).",
                    code="no_seats_available",
                    details={"position": place.position, "waiting": place.waiting},
                )
            time.sleep(min(poll_after, left))

    def _acquire_request(self, extra: dict[str, Any] | None = None, **kwargs: Any):
        body: dict[str, Any] = {
            "license_key": self.license_key,
            "hardware_fingerprint": self.fingerprint,
            "client_info": self._client_info,
            **(extra or {}),
        }
        return self._user_request("POST", ACQUIRE_PATH, json=body, **kwargs)

    def _acquire_online(self, **kwargs: Any) -> Lease:
        return self._acquired(self._acquire_request(**kwargs))

    def _acquired(self, response) -> Lease:
        lease = self._adopt_checkout(response.body, created=response.status == 201, give_back_if_refused=True)
        logger.info(
            "seat acquired" if lease.created else "seat renewed",
            extra={"session_id": lease.session_id, "seats_used": lease.seats_used},
        )
        return lease

    def _adopt_checkout(self, body: Any, *, created: bool, give_back_if_refused: bool = False) -> Lease:
        """Check an acquire or borrow answer, verify its token, make it the lease."""
        try:
            token = body["token"]
            session_id = str(body["session_id"])
            license_id = str(body["license"]["id"])
            if not isinstance(token, str):
                raise TypeError("token")
            lease = Lease(
                session_id=session_id,
                license_id=license_id,
                expires_at=_time(body["expires_at"]),  # type: ignore[arg-type]
                heartbeat_interval=max(MIN_HEARTBEAT_INTERVAL, float(body["heartbeat_interval"])),
                token_expires_at=_time(body.get("token_expires_at")) or datetime.now(UTC),
                seats_used=int(body["seats"]["used"]),
                seats_max=int(body["seats"]["max"]),
                license_expires_at=_time(body["license"].get("expires_at")),
                entitlements=dict(body["license"].get("entitlements") or {}),
                borrowed_until=_time(body.get("borrowed_until")),
                created=created,
                token=token,
                overdraft=body.get("overdraft") is True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError("The checkout answer is not what the contract says.") from exc
        try:
            claims = self._verify_fresh(token, license_id=license_id, session_id=session_id)
        except TokenInvalid:
            if give_back_if_refused:
                # The server holds a seat for an answer this client will not
                # use: give it back rather than hold it to its expiry.
                self._give_back_refused(token)
            raise
        try:
            maintenance_check(claims, app_version=self.app_version, app_released=self.app_released)
        except MaintenanceExpired:
            # A seat this application may not use: given back, not held to its expiry.
            try:
                self._api.request("DELETE", RELEASE_PATH, bearer=token)
            except LicenseError:
                pass  # it frees itself at its expiry anyway
            with self._lock:
                self._forget_lease()
            raise
        # The token's own exp is what offline checks honour; keep the lease in step with it.
        lease = dataclasses.replace(
            lease,
            token_expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            entitlements=claims.entitlements or lease.entitlements,
            license_grace_until=(
                datetime.fromtimestamp(claims.grace_until, UTC) if claims.grace_until is not None else None
            ),
        )
        with self._lock:
            self._lease = lease
            # The server just vouched for the time (the token's iat checked out),
            # so this is a trustworthy last-seen time, even after an earlier
            # clock that ran ahead.
            self._last_seen = self._clock()
            self._write_cache()
        return lease

    def _give_back_refused(self, token: str) -> None:
        try:
            self._api.request("DELETE", RELEASE_PATH, bearer=token)
        except LicenseError:
            pass  # the seat frees itself at its expiry anyway
        else:
            logger.warning("a seat whose token this client does not trust was given back")

    def _verify_fresh(self, token: str, *, license_id: str, session_id: str) -> Claims:
        """Verify a token the server just handed out. A `kid` this client does
        not know yet is looked up only where the trust allows: in the signed key
        set (under a pinned root key), or, in the insecure mode, the plain JWKS."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid("The server's token is not a compact JWS.") from exc
        keyset = self._trust.keyset(self._clock())
        if keyset is None or kid not in keyset:
            if self._trust.roots is not None:
                try:
                    self._refresh_keyset()
                except LicenseError as exc:
                    if exc.status != 404:
                        raise
                    # A server that serves no signed key set: the key stays untrusted.
                    logger.warning("the server serves no signed key set", extra={"kid": str(kid)})
            elif self._trust.insecure:
                fetched = self._fetch_jwks()
                with self._lock:
                    self._trust.unsigned = fetched
            keyset = self._trust.keyset(self._clock())
        if keyset is None:
            raise KeyNotTrusted("No trusted key to verify the token with.")
        claims = keyset.verify(
            token,
            now=self._clock(),
            fingerprint=self.fingerprint,
            issuer=self._issuer,
            license_id=license_id,
            session_id=session_id,
            leeway=self._clock_leeway,
        )
        signed = self._trust.signed
        if (
            signed is not None
            and signed.expires_at < claims.expires_at
            and kid not in (self._trust.pinned or ())
        ):
            # Offline, this token must still find its key: keep a set that outlives it.
            try:
                self._refresh_keyset()
            except LicenseError as exc:
                logger.warning(
                    "the signed key set could not be renewed; offline use ends with it",
                    extra={"error": exc.code, "keyset_exp": signed.expires_at},
                )
        return claims

    def _refresh_keyset(self) -> None:
        """Fetch the signed key set and trust its keys if it verifies under a
        pinned root key and is not older than the newest one seen (here or in
        the cache): an old set replayed cannot bring back a retired key."""
        with self._lock:
            self._adopt_cached_keyset()
        if self._keyset_url:
            api = HttpApi(
                self._keyset_url, timeout=self._api.timeout, retry=self._api.retry, verify=self._api.verify
            )
            try:
                response = api.request("GET", "", text=True, headers={"Accept": "application/jose"})
            finally:
                api.close()
        else:
            for path in KEYSET_PATHS:
                try:
                    response = self._api.request(
                        "GET", path, text=True, headers={"Accept": "application/jose"}
                    )
                    break
                except LicenseError as exc:
                    if exc.status != 404 or path == KEYSET_PATHS[-1]:
                        raise
        signed = verify_signed_keyset(
            self._trust.roots,
            response.body,
            now=self._clock(),
            issuer=self._issuer,
            leeway=self._clock_leeway,
        )
        with self._lock:
            if self._trust.adopt(signed, leeway=self._clock_leeway):
                logger.info(
                    "trusting a signed key set",
                    extra={"kids": signed.keys.kids, "keyset_exp": signed.expires_at},
                )
                self._write_cache()

    def _adopt_cached_keyset(self, *, clock_errors: bool = False) -> None:
        """The cache's signed key set, checked again, as the floor (and, while
        current, the keys) when this client has none yet; one refused is
        ignored (logged), or with `clock_errors` raised when the clock reads
        earlier than its issue time. Callers hold _lock."""
        if self._trust.roots is None or self._trust.signed is not None:
            return
        try:
            entry = self._load_cache()
        except CacheTampered:
            return
        if entry is None or not entry.keyset:
            return
        try:
            signed = verify_signed_keyset(
                self._trust.roots,
                entry.keyset,
                now=self._clock(),
                issuer=self._issuer,
                leeway=self._clock_leeway,
                allow_expired=True,
            )
        except TokenInvalid as exc:
            logger.warning("the cached signed key set is refused", extra={"reason": exc.code})
            if clock_errors and isinstance(exc, ClockSetBack):
                raise
            return
        self._trust.adopt(signed, replay_is_error=False)

    def _fetch_jwks(self) -> KeySet:
        if self._jwks_url:
            api = HttpApi(
                self._jwks_url, timeout=self._api.timeout, retry=self._api.retry, verify=self._api.verify
            )
            try:
                response = api.request("GET", "")
            finally:
                api.close()
        else:
            for path in JWKS_PATHS:
                try:
                    response = self._api.request("GET", path)
                    break
                except LicenseError as exc:
                    if exc.status != 404 or path == JWKS_PATHS[-1]:
                        raise
        keyset = KeySet(response.body)
        if not len(keyset):
            raise TokenInvalid("The server's key set has no usable key.")
        return keyset

    def _load_cache(self) -> CacheEntry | None:
        """The cache entry, read once per client; raises what made it unusable."""
        if self._cache is None:
            return None
        if not self._cache_loaded:
            self._cache_loaded = True
            try:
                self._cache_entry = self._cache.load()
            except CacheTampered as exc:
                logger.warning("the offline license cache is refused", extra={"reason": exc.code})
                self._cache_error = exc
            if self._cache_entry is not None:
                seen = self._cache_entry.last_seen
                self._last_seen = seen if self._last_seen is None else max(self._last_seen, seen)
        if self._cache_error is not None:
            raise self._cache_error
        return self._cache_entry

    def _cached_keyset(self, entry: CacheEntry, now: float) -> KeySet | None:
        """The keys a cached token may verify under. Only the insecure mode
        reads the cache's plain key set; otherwise what the application trusts,
        plus the cache's signed key set if a pinned root key signed it."""
        if self._trust.insecure:
            if self._trust.unsigned is None and entry.jwks:
                self._trust.unsigned = KeySet(entry.jwks)
            return self._trust.unsigned
        self._adopt_cached_keyset(clock_errors=True)
        return self._trust.keyset(now)

    def _offline_lease(self) -> Lease | None:
        """The lease to run on while the server cannot be reached: the one held,
        or the cached one, if its token verifies."""
        with self._lock:
            try:
                claims = self.verify()
                if self._lease is not None:
                    lease = dataclasses.replace(self._lease, offline=True)
                else:
                    entry = self._load_cache()
                    if entry is None or not entry.token or entry.lease is None:
                        return None
                    lease = Lease.from_cache(entry.lease, token=entry.token, claims=claims)
            except LicenseError as exc:
                logger.info("the cached token cannot stand in", extra={"reason": exc.code})
                return None
            self._lease = lease
            return lease

    def _note_seen(self, now: float) -> None:
        self._last_seen = now if self._last_seen is None else max(self._last_seen, now)
        if self._cache is not None and now - self._persisted_seen >= LAST_SEEN_PERSIST_SECONDS:
            self._write_cache()

    def _write_cache(self, *, forget: bool = False) -> None:
        """Persist the lease's token, the key set and the last-seen time; with
        no lease, keep what the cache holds unless `forget`. Best effort: an
        unwritable cache costs offline use, not the seat."""
        if self._cache is None:
            return
        try:
            self._load_cache()
        except CacheTampered:
            pass  # what is written below replaces it
        lease = self._lease
        previous = self._cache_entry if self._cache_error is None else None
        if lease is not None:
            token, meta, license_id = lease.token, lease.to_cache(), lease.license_id
        elif previous is not None and not forget:
            token, meta, license_id = previous.token, previous.lease, previous.license_id
        else:
            token, meta, license_id = None, None, previous.license_id if previous else None
        jwks = None
        if self._trust.insecure:  # the only mode that reads it back
            unsigned = self._trust.unsigned
            jwks = unsigned.jwks if unsigned is not None else (previous.jwks if previous else None)
        signed = self._trust.signed
        entry = CacheEntry(
            token=token,
            jwks=jwks,
            license_id=license_id,
            last_seen=self._last_seen or self._clock(),
            lease=meta,
            keyset=signed.token if signed is not None else (previous.keyset if previous else None),
        )
        try:
            self._cache.store(entry)
        except OSError as exc:
            logger.warning("the offline license cache cannot be written", extra={"error": type(exc).__name__})
            return
        self._cache_entry, self._cache_error = entry, None
        self._persisted_seen = entry.last_seen

    def _forget_lease(self, lease: Lease | None = None) -> None:
        """Drop the lease (or only `lease`, if it is still the current one) and its cached token."""
        with self._lock:
            if lease is not None and self._lease is not lease:
                return
            self._lease = None
            self._write_cache(forget=True)

    def _release(self) -> bool:
        with self._lock:
            lease = self._lease
            token = lease.token if lease else None
            if token is None:
                try:
                    entry = self._load_cache()
                except CacheTampered:
                    entry = None
                token = entry.token if entry else None
        if token is None:
            return False
        try:
            self._api.request("DELETE", RELEASE_PATH, bearer=token)
        except (SessionNotFound, NotAuthenticated):
            released = False
        except TRANSIENT:
            if lease is None or not lease.is_borrowed:
                self._forget_lease(lease)  # an unborrowed seat frees by expiry anyway
            raise
        else:
            released = True
        self._forget_lease(lease)
        logger.info("seat released" if released else "no live seat to release")
        return released

    # --- internals: the heartbeat thread ----------------------------------------------------

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._beater is not None and self._beater.is_alive() and not self._beater_stop.is_set():
                return
            stop = threading.Event()
            thread = threading.Thread(
                target=self._heartbeat_loop, args=(stop,), name="coditect-license-heartbeat", daemon=True
            )
            self._beater, self._beater_stop = thread, stop
        thread.start()

    def _stop_heartbeat(self, *, join: bool = True) -> None:
        with self._lock:
            thread, stop = self._beater, self._beater_stop
            self._beater = self._beater_stop = None
        if stop is not None:
            stop.set()
        if join and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _heartbeat_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                lease = self._lease
            if lease is None or lease.is_borrowed:
                return
            # Jitter only shortens the wait: beats spread out, never later than asked.
            delay = lease.heartbeat_interval * (1 - self._jitter * self._rng.random())
            if stop.wait(delay):
                return
            try:
                callbacks = self._beat(stop)
            except Exception:  # a bug here must not end the thread that keeps the seat
                logger.exception("heartbeat failed unexpectedly")
                callbacks = []
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    logger.exception("a license callback raised")

    def _beat_policy(self, lease: Lease) -> RetryPolicy:
        # One beat's retries end before the next beat is due.
        base = self._api.retry
        return dataclasses.replace(
            base, deadline=min(base.deadline, max(0.5, lease.heartbeat_interval * 0.9))
        )

    def _renewal_due(self, lease: Lease) -> bool:
        claims = self._claims_of(lease)
        if claims is None:
            return True
        lifetime = claims.expires_at - claims.issued_at
        remaining = claims.expires_at - self._clock()
        return remaining <= max(lifetime * (1 - self._renew_fraction), 2 * lease.heartbeat_interval)

    def _claims_of(self, lease: Lease) -> Claims | None:
        try:
            payload = jwt.decode(lease.token, options={"verify_signature": False})
            return Claims.from_payload(payload)
        except (jwt.InvalidTokenError, TokenInvalid):
            return None

    def _beat(self, stop: threading.Event) -> list[Callable[[], None]]:
        with self._op_lock:
            with self._lock:
                lease = self._lease
            if stop.is_set() or lease is None or lease.is_borrowed:
                return []
            policy = self._beat_policy(lease)
            if self._renewal_due(lease):
                # Heartbeats sign nothing: a fresh token (same session) comes from acquiring again.
                try:
                    return self._reacquired(lease, self._acquire_online(retry=policy, interrupt=stop))
                except Interrupted:
                    return []
                except (NotAuthenticated, *TRANSIENT) as exc:
                    logger.warning("token renewal failed; heartbeating on", extra={"error": exc.code})
                except LicenseError as exc:
                    return self._lost(lease, exc)
            try:
                response = self._api.request(
                    "POST",
                    HEARTBEAT_PATH,
                    json=self._idle_report(),
                    bearer=lease.token,
                    retry=policy,
                    interrupt=stop,
                )
            except Interrupted:
                return []
            except (SessionNotFound, NotAuthenticated) as exc:
                logger.info(
                    "the server no longer knows this session; acquiring again", extra={"error": exc.code}
                )
                try:
                    return self._reacquired(lease, self._acquire_online(retry=policy, interrupt=stop))
                except Interrupted:
                    return []
                except TRANSIENT as again:
                    logger.warning("acquiring again failed; will retry", extra={"error": again.code})
                    return []
                except LicenseError as again:
                    return self._lost(lease, again)
            except TRANSIENT as exc:
                logger.warning(
                    "heartbeat failed; running offline until the server answers", extra={"error": exc.code}
                )
                with self._lock:
                    if self._lease is lease:
                        self._lease = dataclasses.replace(lease, offline=True)
                return []
            except LicenseError as exc:
                return self._lost(lease, exc)
            body = response.body if isinstance(response.body, dict) else {}
            with self._lock:
                if self._lease is lease:
                    changes: dict[str, Any] = {"offline": False}
                    try:
                        if body.get("expires_at"):
                            changes["expires_at"] = _time(body["expires_at"])
                        if body.get("heartbeat_interval"):
                            changes["heartbeat_interval"] = max(
                                MIN_HEARTBEAT_INTERVAL, float(body["heartbeat_interval"])
                            )
                    except (ProtocolError, TypeError, ValueError):
                        logger.warning("the heartbeat answer is not what the contract says")
                    self._lease = dataclasses.replace(lease, **changes)
                self.heartbeats_sent += 1
            return []

    def _reacquired(self, old: Lease, new: Lease) -> list[Callable[[], None]]:
        if new.session_id == old.session_id:
            return []
        logger.info(
            "seat acquired again", extra={"old_session_id": old.session_id, "session_id": new.session_id}
        )
        return [lambda: self._on_reacquire(old, new)] if self._on_reacquire else []

    def _notify_reacquired(self, old: Lease, new: Lease) -> None:
        for callback in self._reacquired(old, new):
            try:
                callback()
            except Exception:
                logger.exception("a license callback raised")

    def _lost(self, lease: Lease, error: LicenseError) -> list[Callable[[], None]]:
        logger.warning("the seat is lost", extra={"error": error.code, "session_id": lease.session_id})
        self._forget_lease(lease)
        with self._lock:
            if self._beater_stop is not None:
                self._beater_stop.set()
        return [lambda: self._on_lost(error)] if self._on_lost else []

    # --- internals: interpreter exit -----------------------------------------------------

    def _register_atexit(self) -> None:
        if not self._release_at_exit:
            return
        with self._lock:
            if self._atexit_hook is not None:
                return
            ref = weakref.ref(self)

            def hook() -> None:
                client = ref()
                if client is not None:
                    client.close()

            self._atexit_hook = hook
        atexit.register(hook)

    def _unregister_atexit(self) -> None:
        with self._lock:
            hook, self._atexit_hook = self._atexit_hook, None
        if hook is not None:
            atexit.unregister(hook)
