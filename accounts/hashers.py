"""Django's Argon2id hasher at a cost set in settings (PASSWORD_ARGON2_*).

Same algorithm name ("argon2") and hash format as Django's own, so either
verifies the other's hashes; Django's `must_update` compares a stored hash's
parameters with these and rehashes at the next successful sign-in when they
differ.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import hashers


class Argon2PasswordHasher(hashers.Argon2PasswordHasher):
    @property
    def memory_cost(self) -> int:  # KiB
        return settings.PASSWORD_ARGON2_MEMORY_KIB

    @property
    def time_cost(self) -> int:
        return settings.PASSWORD_ARGON2_TIME_COST

    @property
    def parallelism(self) -> int:
        return settings.PASSWORD_ARGON2_PARALLELISM
