"""License keys: made from 150 random bits, shown once, stored as a SHA-256 digest.

A key looks like `CDT-7K2QF-M9XAD-P4R8T-WJ6NB-E3HVC`: Crockford base32, no
ambiguous letters, easy to read over the phone. The database keeps the
digest and a short display prefix (`CDT-7K2QF`), never the key.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
KEY_PREFIX = "CDT"
GROUPS, GROUP_LENGTH = 6, 5  # 30 symbols x 5 bits = 150 bits
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 1 + GROUP_LENGTH


def generate_license_key() -> str:
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    groups = [symbols[i : i + GROUP_LENGTH] for i in range(0, len(symbols), GROUP_LENGTH)]
    return "-".join([KEY_PREFIX, *groups])


def normalize_license_key(key: str) -> str:
    """Forgive what people do when they retype a key: case and surrounding space."""
    return key.strip().upper()


def looks_like_a_key(term: str) -> bool:
    """A whole key, or most of one: more than a display prefix (what may be
    searched for), so it stays out of addresses and logs."""
    key = normalize_license_key(term)
    return key.startswith(f"{KEY_PREFIX}-") and len(key) >= 20


def license_key_digest(key: str) -> str:
    return hashlib.sha256(normalize_license_key(key).encode()).hexdigest()


def license_key_display_prefix(key: str) -> str:
    return normalize_license_key(key)[:DISPLAY_PREFIX_LENGTH]
