"""A lock held until the current transaction ends, by name: one writer at a
time per name (a customer, a tenant's endpoints). PostgreSQL's transaction
advisory lock; on SQLite nothing is needed, its IMMEDIATE transactions
(core.sqlite_backend) already run one at a time."""

from __future__ import annotations

from django.db import connections


def transaction_lock(name: str, *, using: str = "default") -> None:
    """Wait for, then hold until commit or rollback, the lock called `name`.
    Call inside `transaction.atomic(using=using)`."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
