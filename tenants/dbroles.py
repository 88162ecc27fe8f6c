"""The three PostgreSQL roles and their grants.

- owner: owns the schema and tables, runs migrations. Subject to RLS (FORCE).
- app: what requests connect as. DML only, not owner, not superuser,
  NOBYPASSRLS, so row-level security always applies.
- operator: the separately named path for operator and system work that must
  see every tenant (admin site, sweeps). DML only, BYPASSRLS.

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
    """Create or correct the three roles (cluster-wide)."""
    passwords = passwords or {}
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        _ensure_role(cur, roles.owner, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE", passwords.get("owner"))
        _ensure_role(cur, roles.app, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB", passwords.get("app"))
        _ensure_role(
            cur, roles.operator, "NOSUPERUSER BYPASSRLS NOCREATEROLE NOCREATEDB", passwords.get("operator")
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
    owner, app, operator = (sql.Identifier(n) for n in (roles.owner, roles.app, roles.operator))
    statements = [
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}, {}, {}").format(
            sql.Identifier(database), owner, app, operator
        ),
        sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(app, operator),
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


def drop_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
