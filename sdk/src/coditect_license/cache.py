"""The offline cache: the last license token and the key set, on disk.

One JSON file per (license key, machine) in a directory the application
chooses, written atomically (a temporary file in the same directory, flushed,
then renamed over the old one), readable only by its owner. The file carries
an HMAC over its content, keyed from the license key and the machine's
fingerprint: a file edited by hand, or copied from another machine, is
refused. It also keeps the latest wall-clock time this machine has seen
(`last_seen`), so that a clock set back is noticed even across restarts.

The HMAC is a check against accidents (an edited or copied file), not a
seal: its key comes from the license key and the fingerprint, which the
user has, so anyone who reads this code can write a file it accepts. That
is why nothing in the file is trusted for being there: the token verifies
only under the keys the application ships (coditect_license.trust), and
the signed key set kept here (`keyset`) is checked again under the pinned
root keys at every load. The plain `jwks` is read only by the insecure
development mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coditect_license.errors import CacheTampered

logger = logging.getLogger(__name__)

FORMAT = 1
_MAC_CONTEXT = b"coditect-license-offline-cache-v1"


def normalize_license_key(key: str) -> str:
    """As the server does: case and surrounding space do not matter."""
    return key.strip().upper()


@dataclass(frozen=True)
class CacheEntry:
    token: str | None
    jwks: dict[str, Any] | None
    license_id: str | None
    last_seen: float
    lease: dict[str, Any] | None = None  # what the client knew of its lease, less the token
    keyset: str | None = None  # the newest signed key set (a compact JWS), checked again when read

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "token": self.token,
            "jwks": self.jwks,
            "license_id": self.license_id,
            "last_seen": self.last_seen,
            "lease": self.lease,
            "keyset": self.keyset,
        }


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class OfflineCache:
    def __init__(self, directory: str | os.PathLike[str], *, license_key: str, fingerprint: str) -> None:
        self.directory = Path(directory)
        identity = f"{normalize_license_key(license_key)}\0{fingerprint}".encode()
        name = hashlib.sha256(b"name\0" + identity).hexdigest()[:32]
        self.path = self.directory / f"lease-{name}.json"
        self._mac_key = hmac.new(_MAC_CONTEXT, identity, hashlib.sha256).digest()

    def _mac(self, body: dict[str, Any]) -> str:
        return hmac.new(self._mac_key, _canonical(body), hashlib.sha256).hexdigest()

    def load(self) -> CacheEntry | None:
        """The cached entry; None when there is none; CacheTampered when the
        file is not one this SDK wrote for this license and machine."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheTampered(f"The offline cache cannot be read ({type(exc).__name__}).") from exc
        try:
            stored = json.loads(raw)
            mac = stored.pop("mac")
            if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(stored)):
                raise ValueError("mac")
            if stored.get("format") != FORMAT:
                raise ValueError("format")
            entry = CacheEntry(
                token=stored["token"],
                jwks=stored["jwks"],
                license_id=stored["license_id"],
                last_seen=float(stored["last_seen"]),
                lease=stored["lease"],
                keyset=stored.get("keyset"),  # absent in files written before signed key sets
            )
            if entry.keyset is not None and not isinstance(entry.keyset, str):
                raise TypeError("keyset")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CacheTampered("The offline cache was changed outside the SDK; it is ignored.") from exc
        return entry

    def store(self, entry: CacheEntry) -> None:
        body = entry.body()
        data = _canonical({**body, "mac": self._mac(body)})
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".lease-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_directory()

    def _sync_directory(self) -> None:
        # The rename is durable only once the directory is flushed (POSIX).
        if os.name != "posix":
            return
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
