"""The four PostgreSQL roles and their grants.

- owner: owns the schema and tables, runs migrations. Subject to RLS (FORCE).
- app: what requests connect as. DML only, not owner, not superuser,
  NOBYPASSRLS, so row-level security always applies.
- operator: the separately named path for operator and system work that must
  see every tenant (admin site, sweeps). DML only, BYPASSRLS.
- readonly: the analytics read path (`DATABASE_REPLICA_URL`, the primary or a
  read replica). SELECT on the usage rollups (READONLY_TABLES, under
  row-level security) and nothing else, NOBYPASSRLS: the same policies as the
  app role, so it sees the scoped tenant's rows only and no row with no
  tenant in scope; its sessions start read-only
  (default_transaction_read_only). No other table, with RLS (users, webhook
  secrets, tokens) or without (sessions, idempotency records, billing):
  default privileges cannot name tables, so each migrate grants it the
  rollup tables (`readonly_grant`, run by tenants.apps after migrate, as the
  owner). The database remembers the role's name for that
  (`coditect.readonly_role`, set here).

Run as a superuser (or a role with CREATEROLE). Idempotent: run it again after
changing a password or adding a database.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class RoleNames:
    owner: str = "coditect_owner"
    app: str = "coditect_app"
    operator: str = "coditect_operator"
    readonly: str = "coditect_readonly"


# A database-level setting naming the readonly role: migrate runs as the owner
# with no role names configured, and reads it to grant the new tenant tables.
READONLY_ROLE_SETTING = "coditect.readonly_role"


def _ensure_role(cur, name: str, attributes: str, password: str | None) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    if cur.fetchone() is None:
        try:
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateObject:
            pass  # created meanwhile by a concurrent run
    cur.execute(sql.SQL("ALTER ROLE {} LOGIN " + attributes).format(sql.Identifier(name)))
    if password:
        cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))


def ensure_roles(admin_url: str, roles: RoleNames, passwords: dict[str, str | None] | None = None) -> None:
    """Create or correct the four roles (cluster-wide). One caller at a time:
    PostgreSQL refuses two changes of one role's catalog row at once ("tuple
    concurrently updated"), which two jobs setting up at once (the test
    suite's workers, two deploys) would make."""
    passwords = passwords or {}
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        # Held until the connection closes (a session-level advisory lock).
        cur.execute("SELECT pg_advisory_lock(hashtext('coditect.ensure_roles'))")
        _ensure_role(cur, roles.owner, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE", passwords.get("owner"))
        _ensure_role(cur, roles.app, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB", passwords.get("app"))
        _ensure_role(
            cur, roles.operator, "NOSUPERUSER BYPASSRLS NOCREATEROLE NOCREATEDB", passwords.get("operator")
        )
        _ensure_role(
            cur, roles.readonly, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB", passwords.get("readonly")
        )
        # Every session of the role starts read-only, however it connects (a
        # pooler refuses the connection option the server sets beside it).
        cur.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(roles.readonly)
            )
        )


def ensure_database(admin_url: str, database: str, roles: RoleNames) -> None:
    """Create the database if missing and give the roles their grants in it."""
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(roles.owner)
                )
            )
    db_url = psycopg.conninfo.make_conninfo(admin_url, dbname=database)
    owner, app, operator, readonly = (
        sql.Identifier(n) for n in (roles.owner, roles.app, roles.operator, roles.readonly)
    )
    statements = [
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, {}, {}").format(
            sql.Identifier(database), owner, app, operator
        ),
        # Not TEMPORARY: the readonly role creates nothing, not even a temporary table.
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), readonly),
        sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(database), sql.SQL(READONLY_ROLE_SETTING), sql.Literal(roles.readonly)
        ),
        sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}, {}").format(app, operator, readonly),
        # Tables the owner creates from now on (every migration) get DML grants.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}, {}"
        ).format(owner, app, operator),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {}, {}"
        ).format(owner, app, operator),
    ]
    with psycopg.connect(db_url, autocommit=True) as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        # The tenant tables already there (run again after an upgrade that adds the role).
        readonly_grant(cur, roles.readonly)


# What the analytics read path reads, and all the readonly role may read: the
# usage rollups (analytics.models), each under row-level security. Not the
# other tenant tables: users' password hashes, webhook secrets, refresh
# tokens and API keys are no business of a credential for charts (and the
# tenant a session sees is a setting it may set itself).
READONLY_TABLES = ("usage_hourly", "usage_daily", "usage_rollup_run")


def readonly_grant(cursor, role: str) -> list[str]:
    """Give `role` SELECT on the READONLY_TABLES there are (each under
    row-level security) that the connected role may grant (its own tables; a
    superuser's: all), and take back whatever it holds on any other table
    under row-level security. Idempotent. Returns the tables granted."""
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relrowsecurity "
        "AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY c.relname"
    )
    granted = []
    for (table,) in cursor.fetchall():
        statement = "GRANT SELECT ON {} TO {}" if table in READONLY_TABLES else "REVOKE ALL ON {} FROM {}"
        cursor.execute(sql.SQL(statement).format(sql.Identifier(table), sql.Identifier(role)))
        if table in READONLY_TABLES:
            granted.append(table)
    return granted


def readonly_role_recorded(cursor) -> str | None:
    """The readonly role this database was set up with (ensure_database), if it still exists."""
    cursor.execute(
        "SELECT rolname FROM pg_roles WHERE rolname = nullif(current_setting(%s, true), '')",
        [READONLY_ROLE_SETTING],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def ensure_statement_bounds(admin_url: str, database: str, roles: RoleNames, seconds: float) -> None:
    """Bound every statement and lock wait of the roles the server connects as
    (app, operator, readonly) in `database` by `seconds`, on the server: 0 lifts
    the bound. The owner (migrations) stays unbounded.

    A direct connection sends the same bounds itself, as startup options
    (settings.postgresql_deadline_options), which win over these. A pooler in
    transaction mode refuses startup options (DATABASE_POOLER): there these
    settings, which every server connection it opens as the role starts with,
    are what bound each statement.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        for role in (roles.app, roles.operator, roles.readonly):
            for name in ("statement_timeout", "lock_timeout"):
                target = sql.SQL("ALTER ROLE {} IN DATABASE {}").format(
                    sql.Identifier(role), sql.Identifier(database)
                )
                if seconds > 0:
                    cur.execute(
                        sql.SQL("{} SET {} = {}").format(
                            target, sql.Identifier(name), sql.Literal(f"{int(seconds * 1000)}ms")
                        )
                    )
                else:
                    cur.execute(sql.SQL("{} RESET {}").format(target, sql.Identifier(name)))


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
