"""`coditect-license acquire|status|release|borrow`: the SDK from a shell.

Settings come from options or the environment (options win):
  CODITECT_LICENSE_SERVER       the server's base URL
  CODITECT_LICENSE_KEY          the license key (safer than --license-key, which `ps` shows)
  CODITECT_LICENSE_CACHE_DIR    the offline cache (default: the user's cache directory)
  CODITECT_LICENSE_EMAIL, CODITECT_LICENSE_PASSWORD    sign in with a password, or
  CODITECT_LICENSE_TOKEN        a bearer token (an access token or an Identity Platform ID token), or
  CODITECT_LICENSE_REFRESH_TOKEN
  CODITECT_LICENSE_MACHINE_ID   the machine id to hash (containers)
  CODITECT_LICENSE_TRUSTED_ROOT_KEY   the server's key set root key (JWKS, JWK or PEM file)
  CODITECT_LICENSE_TRUSTED_JWKS       license signing keys trusted as they are (JWKS file)

A token is believed only if it verifies under the trusted keys: give the root
key and/or the JWKS (from `manage.py license_trust_anchors` on the server);
without either the command refuses, unless --insecure-trust-on-first-use
(development only: it believes whatever key set it sees first).

Output is one JSON object on stdout; tokens and keys are never printed.
Exit status: 0 done, 1 refused or failed (the error's code is on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from coditect_license.client import Lease, LicenseClient, QueuePlace
from coditect_license.credentials import BearerToken, Credentials, PasswordLogin, RefreshTokenLogin
from coditect_license.errors import LicenseError, TrustNotConfigured
from coditect_license.trust import load_keys_file


def default_cache_dir(environ=os.environ) -> Path:
    if sys.platform == "win32" and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"]) / "coditect-license"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "coditect-license"


def _credentials(args: argparse.Namespace, environ) -> Credentials | None:
    token = environ.get("CODITECT_LICENSE_TOKEN")
    if token:
        return BearerToken(token)
    email = args.email or environ.get("CODITECT_LICENSE_EMAIL")
    password = environ.get("CODITECT_LICENSE_PASSWORD")
    if email and password:
        return PasswordLogin(email, password)
    refresh = environ.get("CODITECT_LICENSE_REFRESH_TOKEN")
    if refresh:
        return RefreshTokenLogin(refresh)
    return None


def _lease_json(lease: Lease) -> dict[str, Any]:
    return {
        "session_id": lease.session_id,
        "license_id": lease.license_id,
        "created": lease.created,
        "offline": lease.offline,
        "expires_at": lease.expires_at.isoformat(),
        "token_expires_at": lease.token_expires_at.isoformat(),
        "borrowed_until": lease.borrowed_until.isoformat() if lease.borrowed_until else None,
        "heartbeat_interval": lease.heartbeat_interval,
        "seats": {"used": lease.seats_used, "max": lease.seats_max},
        "entitlements": lease.entitlements,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coditect-license",
        description="Check out, keep, borrow and give back a CODITECT license seat.",
        epilog="Environment: see `python -m coditect_license.cli --help` and the SDK README.",
    )
    parser.add_argument("--server", help="base URL (env CODITECT_LICENSE_SERVER)")
    parser.add_argument("--license-key", help="license key (prefer env CODITECT_LICENSE_KEY)")
    parser.add_argument("--cache-dir", help="offline cache directory (env CODITECT_LICENSE_CACHE_DIR)")
    parser.add_argument("--fingerprint", help="send this fingerprint instead of the machine's")
    parser.add_argument("--email", help="sign in as this user (password from env CODITECT_LICENSE_PASSWORD)")
    parser.add_argument(
        "--trusted-root-key",
        metavar="FILE",
        help="trust license keys only through the signed key set under this root key "
        "(JWKS, JWK or PEM; env CODITECT_LICENSE_TRUSTED_ROOT_KEY)",
    )
    parser.add_argument(
        "--trusted-jwks",
        metavar="FILE",
        help="trust these license signing keys (a JWKS file; env CODITECT_LICENSE_TRUSTED_JWKS)",
    )
    parser.add_argument(
        "--insecure-trust-on-first-use",
        action="store_true",
        help="INSECURE, development only: believe the first key set the server or the cache shows",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    acquire = commands.add_parser("acquire", help="check out a seat (kept until it expires or is released)")
    acquire.add_argument(
        "--hold", action="store_true", help="keep heartbeating until interrupted, then release"
    )
    acquire.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="with every seat taken, wait in the license's queue up to SECONDS (the place shows on stderr)",
    )
    commands.add_parser("status", help="the license's seats, and whether this machine is licensed offline")
    commands.add_parser("release", help="give the seat back (a borrowed one too)")
    borrow = commands.add_parser("borrow", help="keep the seat for offline use")
    borrow.add_argument("hours", type=int)
    return parser


def main(argv: list[str] | None = None, environ=None) -> int:
    environ = os.environ if environ is None else environ
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )
    server = args.server or environ.get("CODITECT_LICENSE_SERVER")
    key = args.license_key or environ.get("CODITECT_LICENSE_KEY")
    if not server or not key:
        parser.error(
            "set the server and the license key (--server/--license-key or their environment variables)"
        )
    cache_dir = args.cache_dir or environ.get("CODITECT_LICENSE_CACHE_DIR") or default_cache_dir(environ)
    root_file = args.trusted_root_key or environ.get("CODITECT_LICENSE_TRUSTED_ROOT_KEY")
    jwks_file = args.trusted_jwks or environ.get("CODITECT_LICENSE_TRUSTED_JWKS")
    if args.insecure_trust_on_first_use and (root_file or jwks_file):
        parser.error("--insecure-trust-on-first-use cannot be combined with trusted keys")
    if args.insecure_trust_on_first_use:
        print(
            "WARNING: --insecure-trust-on-first-use: any key set is believed; never in production",
            file=sys.stderr,
        )
    try:
        client = LicenseClient(
            server,
            key,
            _credentials(args, environ),
            fingerprint=args.fingerprint,
            cache_dir=cache_dir,
            release_at_exit=False,
            trusted_root_keys=load_keys_file(root_file) if root_file else None,
            trusted_jwks=load_keys_file(jwks_file) if jwks_file else None,
            insecure_trust_on_first_use=args.insecure_trust_on_first_use,
        )
    except TrustNotConfigured as exc:
        parser.error(
            f"{exc.message} Give --trusted-root-key FILE and/or --trusted-jwks FILE "
            "(or CODITECT_LICENSE_TRUSTED_ROOT_KEY / CODITECT_LICENSE_TRUSTED_JWKS)."
        )
    try:
        result = _run(client, args)
    except LicenseError as exc:
        client.close(release=False)
        error = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        print(json.dumps(error), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _show_place(place: QueuePlace) -> None:
    print(
        f"waiting for a seat: place {place.position} of {place.waiting} ({place.waited:.0f} s)",
        file=sys.stderr,
        flush=True,
    )


def _run(client: LicenseClient, args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "acquire":
        if args.wait is not None:
            lease = client.acquire(wait=args.wait, on_queued=_show_place)
        else:
            lease = client.acquire()
        if not args.hold:
            client.close(release=False)  # a script releases later with `release`
            return _lease_json(lease)
        done = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
        print(json.dumps(_lease_json(lease), sort_keys=True), flush=True)
        done.wait()
        client.close()
        return {"released": True, "session_id": lease.session_id}
    if args.command == "borrow":
        if client.lease is None:
            client.acquire(allow_offline=False)
        lease = client.borrow(args.hours)
        client.close()  # keeps the borrowed seat
        return _lease_json(lease)
    if args.command == "release":
        released = client.release()
        client.close(release=False)
        return {"released": released}
    # status
    try:
        claims = client.verify()
        offline: dict[str, Any] = {
            "licensed": True,
            "until": claims.expires_at,
            "session_id": claims.session_id,
        }
    except LicenseError as exc:
        offline = {"licensed": False, "reason": exc.code}
    result: dict[str, Any] = {"offline": offline}
    try:
        status = client.status()
    except LicenseError as exc:
        result["server"] = {"error": exc.code}
    else:
        result["server"] = {
            "license_id": status.license_id,
            "name": status.name,
            "state": status.state,
            "expires_at": status.expires_at.isoformat() if status.expires_at else None,
            "seats": {"used": status.seats_used, "max": status.seats_max},
            "leases": status.leases,
            "leases_next_cursor": status.leases_next_cursor,
            "entitlements": status.entitlements,
        }
    client.close(release=False)
    return result


if __name__ == "__main__":
    sys.exit(main())
