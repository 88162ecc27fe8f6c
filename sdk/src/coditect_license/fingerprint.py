"""The default hardware fingerprint: a salted hash of the machine id.

Only the hash leaves the machine. It is keyed with a salt (HMAC-SHA256), as
systemd recommends for machine ids, so the value one application sends cannot
be matched with another's, and the machine id itself cannot be recovered.

Containers often share one /etc/machine-id (baked into the image) or have
none; set `CODITECT_LICENSE_MACHINE_ID` (hashed like a machine id) or pass
`fingerprint=` to the client to tell them apart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import subprocess
import sys
from pathlib import Path

from coditect_license.errors import LicenseError

logger = logging.getLogger(__name__)

DEFAULT_SALT = "coditect-license-fingerprint-v1"
MACHINE_ID_ENV = "CODITECT_LICENSE_MACHINE_ID"
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


class MachineIdUnavailable(LicenseError, RuntimeError):
    code = "machine_id_unavailable"


def _read_machine_id_file(paths) -> str | None:
    for path in paths:
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return None


def _windows_machine_guid() -> str | None:
    try:
        import winreg  # type: ignore[import-not-found]

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:
            return str(winreg.QueryValueEx(key, "MachineGuid")[0]).strip() or None
    except OSError:
        return None


def _macos_platform_uuid() -> str | None:
    try:
        output = subprocess.run(
            ["/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in output.splitlines():
        if "IOPlatformUUID" in line:
            return line.split("=", 1)[-1].strip().strip('"') or None
    return None


def machine_id(*, environ=None, paths=MACHINE_ID_FILES) -> str:
    """This machine's raw id. It stays on the machine: only `fingerprint()`'s
    hash of it is ever sent."""
    environ = os.environ if environ is None else environ
    override = environ.get(MACHINE_ID_ENV, "").strip()
    if override:
        return override
    value = _read_machine_id_file(paths)
    if value is None and sys.platform == "win32":
        value = _windows_machine_guid()
    if value is None and sys.platform == "darwin":
        value = _macos_platform_uuid()
    if value is None:
        raise MachineIdUnavailable(
            f"No machine id found; set {MACHINE_ID_ENV} or pass fingerprint= to the client."
        )
    return value


def fingerprint(*, salt: str = DEFAULT_SALT, raw_machine_id: str | None = None, environ=None) -> str:
    """64 hex characters: HMAC-SHA256 of the machine id, keyed with `salt`."""
    raw = raw_machine_id if raw_machine_id is not None else machine_id(environ=environ)
    return hmac.new(salt.encode(), raw.encode(), hashlib.sha256).hexdigest()
