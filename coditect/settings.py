"""Settings for the CODITECT license server.

Every value comes from the environment (documented in `.env.example`). With no
variables set, the server runs on the embedded default: a SQLite file, the
database seat ledger, no Redis and no broker.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# A `.env` file beside manage.py (or the one CODITECT_ENV_FILE names) is read
# if present, as `.env.example` suggests; a variable set in the environment
# itself wins over the file.
_ENV_FILE = Path(os.environ.get("CODITECT_ENV_FILE") or BASE_DIR / ".env")
if _ENV_FILE.is_file():
    environ.Env.read_env(_ENV_FILE, overwrite=False)
VAR_DIR = Path(os.environ.get("CODITECT_VAR_DIR") or BASE_DIR / "var")

env = environ.Env()


def secret(name: str, default: str | None = None) -> str | None:
    """Read NAME, or the contents of the file named by NAME_FILE (mounted secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


DEBUG = env.bool("DEBUG", default=False)
# `manage.py setup_database_roles` runs before the install has any secret: it
# needs only DATABASE_ADMIN_URL, so the production checks (SECRET_KEY, the
# operator URL, the signing keys at startup) leave it alone. It signs nothing
# and serves nothing.
DATABASE_ROLES_SETUP = sys.argv[1:2] == ["setup_database_roles"] and Path(sys.argv[0]).name == "manage.py"

SECRET_KEY = secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and not DATABASE_ROLES_SETUP:
        raise ImproperlyConfigured("Set SECRET_KEY (or SECRET_KEY_FILE); DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First, so that its createsuperuser (on the operator path) replaces
    # django.contrib.auth's: of two apps' commands of one name, the earlier wins.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "tenants",
    "audit",
    "licenses",
    "webhooks",
    "analytics",
    "billing",
    "coditect",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.middleware.RequestContextMiddleware",
    # DEBUG only: a bad Host on the API answers the error shape, not the debug page.
    "core.errors.DebugApiBadHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.ratelimit.PerIpRateLimitMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "core.middleware.QueryStringNulMiddleware",
    # The Host check and Content-Length, for every request.
    "django.middleware.common.CommonMiddleware",
    # The license-token heartbeat and release skip the rest (LEAN_PATHS).
    "core.middleware.LeanPathMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "tenants.middleware.OperatorSiteMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "coditect.middleware.KeyOutOfAdminAddressMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django_prometheus's after-half, its labelled children kept per process.
    "core.middleware.RequestMetricsMiddleware",
]

# The calls every running application makes, answered past LeanPathMiddleware
# without the middleware that pages and sign-ins need.
LEAN_PATHS = ("/api/v1/licenses/heartbeat", "/api/v1/licenses/release")

ROOT_URLCONF = "coditect.urls"
WSGI_APPLICATION = "coditect.wsgi.application"
ASGI_APPLICATION = "coditect.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------
# `default` is the application role: not the tables' owner, no BYPASSRLS, so
# PostgreSQL row-level security applies to every request. `operator` is the
# one separately named path that sees every tenant (admin site, system tasks);
# it connects as a role with BYPASSRLS. Migrations run as the owner role: the
# process that migrates is given the owner's URL as DATABASE_URL.
SQLITE_PATH = VAR_DIR / "coditect.sqlite3"
CONN_MAX_AGE = env.int("DATABASE_CONN_MAX_AGE", default=60)
# The most one PostgreSQL call may take, in seconds (0: no limit, for the
# migration job). The server ends a statement or a lock wait after it; a
# server that does not answer at all is given up by the client half a second
# later (core/postgresql), so the request answers 503 instead of stalling.
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=5.0)
# A pooler between the server and PostgreSQL: empty (direct connections) or
# "pgbouncer", a pooler in transaction mode (the sidecar of
# deploy/k8s/components/pgbouncer, or Cloud SQL's Managed Connection Pooling).
# Such a pooler lends a server connection for one transaction at a time, so
# nothing may live in a server session: it refuses libpq's `options` startup
# parameter (the server's limits above then come from the roles themselves,
# which `setup_database_roles` bounds), and Django's holdable server-side
# cursors and psycopg's prepared statements are off. docs/operations.md, "PgBouncer".
DATABASE_POOLER = env.str("DATABASE_POOLER", default="")
if DATABASE_POOLER not in {"", "pgbouncer"}:
    raise ImproperlyConfigured("DATABASE_POOLER must be empty (direct connections) or 'pgbouncer'.")


def _sqlite(path: str) -> dict:
    return {
        # Django's SQLite, with a process's threads queued for the write
        # lock in Python rather than in SQLite's sleeping busy handler.
        "ENGINE": "core.sqlite_backend",
        "NAME": path,
        # IMMEDIATE takes the write lock at BEGIN, so the database ledger's
        # read-then-write runs serialised on SQLite as it does under row
        # locks on PostgreSQL.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def postgresql_deadline_options(seconds: float, options: str, *, startup_options: bool = True) -> dict:
    """libpq parameters that bound every call to PostgreSQL by `seconds`.

    Without `startup_options` (behind a pooler, which refuses them) the
    server's own limits are left to the role's settings; the client's stay.
    """
    if seconds <= 0:
        return {}
    ms = int(seconds * 1000)
    server_limits = {
        # The server's own limits, for a server that is slow or blocked on a
        # lock: the statement fails cleanly and the connection stays usable.
        "options": f"{options} -c statement_timeout={ms} -c lock_timeout={ms}".strip(),
    }
    return {
        **(server_limits if startup_options else {}),
        # A peer that is gone (host down, a path dropping packets) is noticed
        # on an idle connection by keepalives, and on one with data unacknowledged
        # by tcp_user_timeout, instead of after the kernel's many minutes.
        "keepalives": 1,
        "keepalives_idle": max(1, math.ceil(seconds)),
        "keepalives_interval": max(1, math.ceil(seconds / 3)),
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
        # A server that still acknowledges packets but answers nothing (hung,
        # stopped) escapes all of the above: the client's own deadline, later
        # than the server's so that a live server's clean cancel comes first.
        "deadline": seconds + 0.5,
    }


def _transaction_pooled(config: dict) -> None:
    """Nothing of a connection's may outlive its transaction: behind a pooler
    in transaction mode the next one may run on another server connection."""
    options = config["OPTIONS"]
    if "options" in options:
        raise ImproperlyConfigured(
            "DATABASE_POOLER=pgbouncer: PgBouncer refuses the `options` startup parameter that the "
            "database URL sets; set those settings on the role instead (ALTER ROLE ... SET)."
        )
    # Django's cursors for .iterator() outside a transaction are WITH HOLD:
    # they outlive the transaction, and with it the server connection it had.
    config["DISABLE_SERVER_SIDE_CURSORS"] = True
    # psycopg prepares a query it has run five times on a connection, and the
    # prepared statement lives in one server session. PgBouncer before 1.21
    # (Debian 12 ships 1.18) does not follow them, so they stay off; on 1.21 or
    # newer with max_prepared_statements set, `?prepare_threshold=N` in the URL
    # turns them on.
    threshold = options.get("prepare_threshold")
    options["prepare_threshold"] = int(threshold) if threshold not in (None, "") else None


def _database(url: str | None, *, pooler: str | None = None) -> dict:
    pooler = DATABASE_POOLER if pooler is None else pooler
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        config = _sqlite(str(SQLITE_PATH))
    else:
        config = environ.Env.db_url_config(url)
        if "sqlite" in config["ENGINE"]:
            # A SQLite file named by URL gets the same serialised transactions:
            # without them the database ledger could oversell.
            config = _sqlite(config["NAME"])
            config["ATOMIC_REQUESTS"] = False
            return config
        config["CONN_MAX_AGE"] = CONN_MAX_AGE
        config["CONN_HEALTH_CHECKS"] = True
        options = config.setdefault("OPTIONS", {})
        options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
        if config["ENGINE"] == "django.db.backends.postgresql":
            config["ENGINE"] = "core.postgresql"
            if pooler:
                _transaction_pooled(config)
            options.update(
                postgresql_deadline_options(
                    DATABASE_STATEMENT_TIMEOUT, options.get("options", ""), startup_options=not pooler
                )
            )
        sslmode = os.environ.get("DATABASE_SSLMODE")
        if sslmode:
            options["sslmode"] = sslmode
        sslrootcert = os.environ.get("DATABASE_SSLROOTCERT")
        if sslrootcert:
            options["sslrootcert"] = sslrootcert
    config["ATOMIC_REQUESTS"] = False
    return config


DATABASE_URL = secret("DATABASE_URL")
DATABASE_OPERATOR_URL = secret("DATABASE_OPERATOR_URL")
DATABASES = {"default": _database(DATABASE_URL)}
if (
    DATABASES["default"]["ENGINE"].endswith("postgresql")
    and not DATABASE_OPERATOR_URL
    and not DATABASE_ROLES_SETUP
):
    # Under RLS the app role sees no tenant-less rows and no other tenant: sign-in
    # by email, the admin site and the sweeps need the operator role's path.
    raise ImproperlyConfigured(
        "Set DATABASE_OPERATOR_URL (the operator role, BYPASSRLS) beside DATABASE_URL on PostgreSQL; "
        "see `python manage.py setup_database_roles`."
    )
if DATABASE_OPERATOR_URL:
    DATABASES["operator"] = _database(DATABASE_OPERATOR_URL)
# The alias operator work uses; on a single-role install (SQLite) it is default.
OPERATOR_DATABASE = "operator" if DATABASE_OPERATOR_URL else "default"


def read_only_connection(config: dict) -> dict:
    """Every transaction of the connection read-only: for the `replica` alias,
    a guard beside the readonly role's grants (SELECT only) and its own
    default_transaction_read_only."""
    options = config.setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c default_transaction_read_only=on".strip()
    return config


# The analytics read path (the usage API, the dashboard's charts; see
# tenants.scope.replica_scope): the readonly role, on a read replica or the
# primary. Unset, those reads are the primary's, as the app role's.
DATABASE_REPLICA_URL = secret("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _database(DATABASE_REPLICA_URL)
    if not all(DATABASES[alias]["ENGINE"].endswith("postgresql") for alias in ("default", "replica")):
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL needs PostgreSQL for both DATABASE_URL and itself: the readonly role, "
            "on the primary of DATABASE_URL or a replica of it. Unset it to read analytics from the primary."
        )
    if not DATABASE_POOLER:
        # Behind a pooler, which refuses startup options, the role's own
        # default_transaction_read_only (setup_database_roles) stands alone.
        read_only_connection(DATABASES["replica"])
REPLICA_DATABASE = "replica" if DATABASE_REPLICA_URL else "default"
DATABASE_ROUTERS = ["tenants.routers.OperatorRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# Argon2id first: new passwords and every sign-in of an older hash use it (Django
# rehashes a PBKDF2 password at its next successful sign-in); PBKDF2 stays so
# existing hashes still verify. The cost is OWASP's first Argon2id profile
# (19 MiB, two passes, one lane: ~25 ms of one core), not Django's 100 MiB x 8
# lanes; raising these rehashes each password at its next sign-in.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
PASSWORD_ARGON2_MEMORY_KIB = env.int("PASSWORD_ARGON2_MEMORY_KIB", default=19456)
PASSWORD_ARGON2_TIME_COST = env.int("PASSWORD_ARGON2_TIME_COST", default=2)
PASSWORD_ARGON2_PARALLELISM = env.int("PASSWORD_ARGON2_PARALLELISM", default=1)
# The admin site signs in through the sign-in throttle (accounts.backends).
# ModelBackend stays listed only so that sessions begun under it (the dashboard
# names it) keep loading their user; the throttled backend ends every refused
# attempt with PermissionDenied, so authenticate() never falls through to it.
AUTHENTICATION_BACKENDS = [
    "accounts.backends.ThrottledModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Redis -------------------------------------------------------------------
REDIS_URL = secret("REDIS_URL")
# Redis Cluster (Memorystore for Redis Cluster): REDIS_CLUSTER=true, or a
# redis+cluster:// (rediss+cluster://) REDIS_URL naming any node or the
# discovery endpoint. Either way REDIS_URL takes the +cluster form, which
# core.redis_clients reads: the seat ledger, rate limiter, sign-in throttle,
# probes and cache then run on RedisCluster. Celery's broker cannot be a
# cluster (CELERY_BROKER_URL below).
REDIS_CLUSTER = env.bool("REDIS_CLUSTER", default=False)
if REDIS_CLUSTER and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_CLUSTER=true needs REDIS_URL (any node of the cluster).")
if REDIS_URL and (REDIS_CLUSTER or REDIS_URL.partition("://")[0].endswith("+cluster")):
    from urllib.parse import urlsplit

    from core.redis_clients import redis_cluster_url

    try:
        REDIS_URL = redis_cluster_url(REDIS_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REDIS_URL: {exc}.") from exc
    if urlsplit(REDIS_URL).path not in ("", "/", "/0"):
        raise ImproperlyConfigured("A Redis Cluster has database 0 only: REDIS_URL ends in /0 or no path.")
    REDIS_CLUSTER = True
# TLS (Memorystore in-transit encryption): a rediss:// URL verifies the server
# against REDIS_SSL_CA_CERTS. The options ride in the URL itself, so every
# client built from it (cache, ledger, probes, Celery) speaks the same TLS.
REDIS_SSL_CA_CERTS = env.str("REDIS_SSL_CA_CERTS", default="")
REDIS_SSL_CHECK_HOSTNAME = env.bool("REDIS_SSL_CHECK_HOSTNAME", default=True)
if REDIS_URL and REDIS_URL.startswith(("rediss://", "rediss+cluster://")):
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    _parts = urlsplit(REDIS_URL)
    _query = dict(parse_qsl(_parts.query))
    _query.setdefault("ssl_cert_reqs", "required")
    _query.setdefault("ssl_check_hostname", "true" if REDIS_SSL_CHECK_HOSTNAME else "false")
    if REDIS_SSL_CA_CERTS:
        _query.setdefault("ssl_ca_certs", REDIS_SSL_CA_CERTS)
    REDIS_URL = urlunsplit(_parts._replace(query=urlencode(_query)))
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="coditect")
if REDIS_CLUSTER and ("{" in REDIS_KEY_PREFIX or "}" in REDIS_KEY_PREFIX):
    # A hash tag in the prefix would put every key of every license in one slot.
    raise ImproperlyConfigured("REDIS_KEY_PREFIX holds no { or } on a Redis Cluster.")
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=2.0)
# The Redis seat ledger needs maxmemory-policy noeviction, and /ready reads it
# with CONFIG GET. Managed Redis (Memorystore) refuses CONFIG: there, true says
# an operator checked the instance's policy by hand (docs/operations.md).
REDIS_EVICTION_POLICY_VERIFIED = env.bool("REDIS_EVICTION_POLICY_VERIFIED", default=False)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
    if REDIS_CLUSTER:
        # django-redis has no cluster client of its own (core/redis_cache.py).
        CACHES["default"]["OPTIONS"]["CLIENT_CLASS"] = "core.redis_cache.ClusterCacheClient"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SEAT_LEDGER = env.str("SEAT_LEDGER", default="redis" if REDIS_URL else "database")
if SEAT_LEDGER not in {"redis", "database"}:
    raise ImproperlyConfigured("SEAT_LEDGER must be 'redis' or 'database'.")
if SEAT_LEDGER == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("SEAT_LEDGER=redis needs REDIS_URL.")

# --- Licensing defaults --------------------------------------------------------
LICENSE_DEFAULT_LEASE_TTL = env.int("LICENSE_DEFAULT_LEASE_TTL", default=360)
LICENSE_DEFAULT_OFFLINE_GRACE = env.int("LICENSE_DEFAULT_OFFLINE_GRACE", default=24 * 3600)
LICENSE_DEFAULT_BORROW_LIMIT_HOURS = env.int("LICENSE_DEFAULT_BORROW_LIMIT_HOURS", default=72)
LICENSE_TOKEN_ISSUER = env.str("LICENSE_TOKEN_ISSUER", default="coditect-license-server")
# Seconds a process may use a license's state (suspended, expiry, TTL) without
# reading it again; heartbeats read it on every call. 0: always read.
LICENSE_CACHE_SECONDS = env.float("LICENSE_CACHE_SECONDS", default=5.0)
# While PostgreSQL does not answer, heartbeats go on with what was last read
# (a license, a holder's standing) for at most this long.
LICENSE_CACHE_STALE_IF_ERROR_SECONDS = env.float("LICENSE_CACHE_STALE_IF_ERROR_SECONDS", default=3600.0)
# Seconds a process may use what it read of an access token's caller (the user,
# its role and tenant, whether its sign-in has ended) on acquire and status.
# 0: always read.
CALLER_CACHE_SECONDS = env.float("CALLER_CACHE_SECONDS", default=5.0)

# --- Provisioning API (issue 15) ------------------------------------------------------
# Hours an `Idempotency-Key` of a create is kept (licenses/idempotency.py).
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)

# --- API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON within the API_MAX_* limits below (core/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["core.parsers.BoundedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerAuthentication"],
    # Every endpoint: a member of the scoped tenant; read-only members may only read.
    "DEFAULT_PERMISSION_CLASSES": [
        "accounts.permissions.IsTenantMember",
        "accounts.permissions.ReadOnlyOrWriter",
    ],
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ContractAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# What one API request body may hold; beyond it 413 request_too_large (size) or
# 400 invalid_request (the others), never a 500. Keys count over the whole body.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
API_MAX_JSON_DEPTH = env.int("API_MAX_JSON_DEPTH", default=32)
API_MAX_JSON_KEYS = env.int("API_MAX_JSON_KEYS", default=1000)
API_MAX_STRING_LENGTH = env.int("API_MAX_STRING_LENGTH", default=8192)
SPECTACULAR_SETTINGS = {
    # The two `state` fields (a license's, a tenant's), each with its own enum.
    "ENUM_NAME_OVERRIDES": {
        "LicenseStateEnum": ["active", "suspended", "expired"],
        "TenantStateEnum": ["active", "suspended"],
    },
    "TITLE": "CODITECT License Server API",
    "DESCRIPTION": "Floating license seats: acquire, heartbeat, release, borrow.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get components of their own, which say what a request
    # must carry (a string that may not be blank has minLength 1).
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's scripts come with the server (static files), never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One tag per area; core.openapi.TAG_BY_PREFIX gives each operation its tag by path.
    "TAGS": [
        {"name": "auth", "description": "Sign-up, sign-in, tokens and the caller's own account."},
        {"name": "invites", "description": "Invite codes a tenant admin hands out; register redeems them."},
        {
            "name": "licenses",
            "description": "Seats: acquire, heartbeat, release, borrow, and license status.",
        },
        {"name": "analytics", "description": "Usage per license per hour or day, for tenant admins."},
        {"name": "keys", "description": "The public keys that verify license tokens (JWKS, signed key set)."},
        {
            "name": "provisioning",
            "description": (
                "The vendor's backend: tenants and licenses, with an API key (`cdt_pk_...`); tenant "
                "admins may read their own licenses with their access token."
            ),
        },
        {
            "name": "webhooks",
            "description": "Outbound webhooks: a tenant admin's endpoints, their deliveries, redelivery, ping.",
        },
        {
            "name": "integrations",
            "description": "Events other services send: Stripe's webhook, verified by its signature.",
        },
    ],
}

# --- Static files, i18n ---------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security ----------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
# Admin and dashboard sessions: a row of the table is not a cookie and cannot be
# turned into one (accounts/sessions.py; the app role reads that table).
SESSION_ENGINE = "accounts.sessions"
X_FRAME_OPTIONS = "DENY"
# Kubelet probes and Prometheus reach a pod by its IP, which the Downward API
# hands over as POD_IP: those requests pass the host check, nothing else does.
POD_IP = env.str("POD_IP", default="")
if POD_IP:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, POD_IP]
# Content security policy for every HTML page (dashboard, admin). Everything is
# served from this origin; inline styles stay allowed because the admin's
# widgets set style attributes. Swagger UI (/api/docs/, files from the sidecar
# package) starts with an inline script, so that page is left out rather than
# widening the policy for every page; ReDoc keeps it, plus a worker (api_docs.py).
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
CONTENT_SECURITY_POLICY_REPORT_ONLY = env.bool("CONTENT_SECURITY_POLICY_REPORT_ONLY", default=False)
CONTENT_SECURITY_POLICY_EXEMPT = env.list("CONTENT_SECURITY_POLICY_EXEMPT", default=[r"^api/docs/"])
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "core.middleware.ContentSecurityPolicyMiddleware",
)

# --- Logging -------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "core.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
ADMIN_URL = env.str("ADMIN_URL", default="admin/")

# --- License token signing ---------------------------------------------------------
# One signer: local PEM files (the first key signs, the others only verify until
# removed) or a Cloud KMS key version. LICENSE_VERIFY_KEYS_FILE publishes and
# accepts retired keys (public or private PEMs) without ever signing with them.
# With DEBUG on and no signer set, a development key is made under VAR_DIR;
# with DEBUG off the server refuses to start (licenses.apps).
LICENSE_SIGNING_KEY_FILE = env.list("LICENSE_SIGNING_KEY_FILE", default=[])
LICENSE_SIGNING_KMS_KEY = env.str("LICENSE_SIGNING_KMS_KEY", default="")
LICENSE_VERIFY_KEYS_FILE = env.list("LICENSE_VERIFY_KEYS_FILE", default=[])
LICENSE_SIGNING_KMS_TIMEOUT = env.float("LICENSE_SIGNING_KMS_TIMEOUT", default=3.0)
# A KMS key protected in software (not by an HSM) is refused unless this says
# it is meant (a development project without Cloud HSM).
LICENSE_SIGNING_KMS_ALLOW_SOFTWARE = env.bool("LICENSE_SIGNING_KMS_ALLOW_SOFTWARE", default=False)
# The development key is made only when DEBUG was on at startup (tests turn
# DEBUG off at run time; the decision stays the one made here).
LICENSE_SIGNING_DEV_KEY_FILE = VAR_DIR / "license-signing-dev-ed25519.pem" if DEBUG else None
LICENSE_JWKS_MAX_AGE = env.int("LICENSE_JWKS_MAX_AGE", default=300)

# --- Signed license key set (issue 13) -------------------------------------------------
# /.well-known/coditect-keyset.jws: the license JWKS signed by a long-lived root
# key whose public half applications pin (manage.py license_trust_anchors), so
# that a new license signing key is trusted without an application update.
# With DEBUG off the web tier refuses to start without the root key while the
# endpoint is served (coditect.wsgi); under DEBUG a development root key is made.
LICENSE_KEYSET_ENABLED = env.bool("LICENSE_KEYSET_ENABLED", default=True)
LICENSE_KEYSET_ROOT_KEY_FILE = env.str("LICENSE_KEYSET_ROOT_KEY_FILE", default="")
LICENSE_KEYSET_ROOT_DEV_KEY_FILE = VAR_DIR / "license-keyset-root-dev-ed25519.pem" if DEBUG else None
LICENSE_KEYSET_LIFETIME = env.int("LICENSE_KEYSET_LIFETIME", default=30 * 86400)

# --- Accounts and access -------------------------------------------------------------
# Access tokens are signed by the server's own Ed25519 key, separate from the
# license signing key: the first key in AUTH_SIGNING_KEY_FILE signs, the others
# only verify until removed (rotation). With DEBUG on and none set, a development
# key is made under VAR_DIR; with DEBUG off the server refuses to start (accounts.apps).
AUTH_SIGNING_KEY_FILE = env.list("AUTH_SIGNING_KEY_FILE", default=[])
# Decided once, at startup (test runners turn DEBUG off later, the choice stays).
AUTH_SIGNING_DEV_KEY_FILE = VAR_DIR / "auth-signing-dev-ed25519.pem" if DEBUG else None
AUTH_TOKEN_ISSUER = env.str("AUTH_TOKEN_ISSUER", default="coditect-auth")
AUTH_TOKEN_AUDIENCE = env.str("AUTH_TOKEN_AUDIENCE", default="coditect-api")
ACCESS_TOKEN_LIFETIME = env.int("ACCESS_TOKEN_LIFETIME", default=3600)
REFRESH_TOKEN_LIFETIME = env.int("REFRESH_TOKEN_LIFETIME", default=7 * 24 * 3600)
INVITE_LIFETIME_HOURS = env.int("INVITE_LIFETIME_HOURS", default=72)
# The dashboard's People page (issue 16): an invite is sent again (a new code) at
# most once per this many seconds, so a button held down mails no one a flood.
INVITE_RESEND_INTERVAL = env.int("INVITE_RESEND_INTERVAL", default=60)
PASSWORD_LOGIN_ENABLED = env.bool("PASSWORD_LOGIN_ENABLED", default=True)
# Whether anyone may register a new tenant (POST /auth/register with tenant_name);
# closed, only an invite code registers (into the inviting tenant), and operators
# create tenants. Open by default only under DEBUG.
REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=DEBUG)
# Identity Platform (Firebase Auth) sign-in: off while the project id is empty.
# Credentials: a service-account JSON file, or else application default
# credentials (Workload Identity on GKE); they are used only for the revocation check.
IDENTITY_PLATFORM_PROJECT_ID = env.str("IDENTITY_PLATFORM_PROJECT_ID", default="")
IDENTITY_PLATFORM_CREDENTIALS_FILE = env.str("IDENTITY_PLATFORM_CREDENTIALS_FILE", default="")
IDENTITY_PLATFORM_HTTP_TIMEOUT = env.float("IDENTITY_PLATFORM_HTTP_TIMEOUT", default=5.0)
# The dashboard's sign-in page runs the Firebase Auth web SDK (vendored in
# analytics/static/vendor/) with the project's Web API key (a public identifier
# of the project, not a secret) and auth domain (where Google's sign-in pop-up
# is served: <project>.firebaseapp.com unless a custom domain is set up). With
# no API key the dashboard offers no Google or GitHub button.
IDENTITY_PLATFORM_API_KEY = env.str("IDENTITY_PLATFORM_API_KEY", default="")
IDENTITY_PLATFORM_AUTH_DOMAIN = env.str(
    "IDENTITY_PLATFORM_AUTH_DOMAIN",
    default=f"{IDENTITY_PLATFORM_PROJECT_ID}.firebaseapp.com" if IDENTITY_PLATFORM_PROJECT_ID else "",
)
IDENTITY_PLATFORM_PROVIDERS = env.list("IDENTITY_PLATFORM_PROVIDERS", default=["google.com", "github.com"])
if unknown := set(IDENTITY_PLATFORM_PROVIDERS) - {"google.com", "github.com"}:
    raise ImproperlyConfigured(f"IDENTITY_PLATFORM_PROVIDERS: {sorted(unknown)} (google.com, github.com)")
# Tenant admins must sign in to the dashboard with a second factor: an
# Identity Platform sign-in whose token carries its multi-factor claim (TOTP or
# SMS, enrolled in Identity Platform); their password sign-in is refused then.
DASHBOARD_ADMIN_MFA_REQUIRED = env.bool("DASHBOARD_ADMIN_MFA_REQUIRED", default=False)
# Requests per window (default a minute); 0 turns that limit off.
RATE_LIMIT_PER_IP = env.int("RATE_LIMIT_PER_IP", default=100)
RATE_LIMIT_PER_USER = env.int("RATE_LIMIT_PER_USER", default=600)
RATE_LIMIT_WINDOW_SECONDS = env.int("RATE_LIMIT_WINDOW_SECONDS", default=60)
RATE_LIMIT_BACKEND = env.str("RATE_LIMIT_BACKEND", default="redis" if REDIS_URL else "database")
if RATE_LIMIT_BACKEND not in {"redis", "database"}:
    raise ImproperlyConfigured("RATE_LIMIT_BACKEND must be 'redis' or 'database'.")
if RATE_LIMIT_BACKEND == "redis" and not REDIS_URL:
    raise ImproperlyConfigured("RATE_LIMIT_BACKEND=redis needs REDIS_URL.")
# Per-account sign-in throttle (accounts.throttle), keyed by the normalised email
# whatever the address, for every password door (API, dashboard, admin). From
# the Nth consecutive failure on, each failure locks the account for
# BASE * 2^(failures - N) seconds, at most MAX; a locked account is refused
# (429 login_throttled) before any password is hashed. Failures are forgotten
# WINDOW seconds after the last one, or at a successful sign-in. 0 failures: off.
LOGIN_FAILURES_BEFORE_THROTTLE = env.int("LOGIN_FAILURES_BEFORE_THROTTLE", default=5)
LOGIN_BACKOFF_BASE_SECONDS = env.float("LOGIN_BACKOFF_BASE_SECONDS", default=30.0)
LOGIN_BACKOFF_MAX_SECONDS = env.float("LOGIN_BACKOFF_MAX_SECONDS", default=900.0)
LOGIN_FAILURE_WINDOW_SECONDS = env.float("LOGIN_FAILURE_WINDOW_SECONDS", default=3600.0)
# Password checks (a hash each) one host (pod) runs at once, across its workers;
# a sign-in beyond them is refused at once (429 rate_limited, Retry-After 1), so
# a flood of guesses at many accounts cannot take every worker. 0: no cap.
LOGIN_CONCURRENT_CHECKS = env.int("LOGIN_CONCURRENT_CHECKS", default=2)
# Where the slots' lock files live (default /dev/shm, else the temporary directory).
LOGIN_CHECK_SLOT_DIR = env.str("LOGIN_CHECK_SLOT_DIR", default="")
# How many proxies of ours append to X-Forwarded-For (the client is the entry that
# many places from the right); 0 trusts no header and uses the peer address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["accounts.ratelimit.PerUserRateLimit"]

# --- Operations: metrics, Celery ------------------------------------------------------
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (or METRICS_TOKEN_FILE);
# unset, it is served only with DEBUG on. Tenant slugs appear in metric labels only
# with METRICS_TENANT_LABELS on; otherwise the tenant label holds the tenant's id.
METRICS_TOKEN = secret("METRICS_TOKEN", "") or ""
METRICS_TENANT_LABELS = env.bool("METRICS_TENANT_LABELS", default=False)
# Seats per license are read from the ledger at scrape time (licenses.metrics):
# at most this many licenses, the answer kept this many seconds.
METRICS_SEAT_LICENSES_MAX = env.int("METRICS_SEAT_LICENSES_MAX", default=500)
METRICS_SEAT_CACHE_SECONDS = env.float("METRICS_SEAT_CACHE_SECONDS", default=15.0)
# Celery (coditect/celery.py reads every CELERY_* setting). Redis is broker and
# result store when REDIS_URL is set; without it (the embedded default) tasks
# run eagerly in the caller's process and no broker is needed.
# Celery's Redis transport and result store speak to one Redis, not a cluster:
# beside a Redis Cluster, CELERY_BROKER_URL names a plain Redis of its own
# (a rediss:// one carries its TLS options in its query), and the results go there too.
# Both are secrets (a broker URL carries its AUTH string): NAME or NAME_FILE.
_BROKER_URL = secret("CELERY_BROKER_URL", "") or ""
if REDIS_CLUSTER and not _BROKER_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is a Redis Cluster, which Celery cannot use as its broker: set CELERY_BROKER_URL"
        " to a plain Redis (redis:// or rediss://), or to memory:// with CELERY_TASK_ALWAYS_EAGER=true."
    )
CELERY_BROKER_URL = _BROKER_URL or REDIS_URL or "memory://"
if "+cluster://" in CELERY_BROKER_URL:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL cannot be a Redis Cluster: Celery needs a plain Redis broker."
    )
if REDIS_CLUSTER:
    _RESULTS_DEFAULT = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
else:
    _RESULTS_DEFAULT = REDIS_URL or ""
CELERY_RESULT_BACKEND = secret("CELERY_RESULT_BACKEND", _RESULTS_DEFAULT) or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="coditect")
# Tasks are idempotent: acknowledge after the work, so a worker lost mid-task
# (a Cloud Run instance stopped) leaves the task for another.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=24 * 3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE: dict = {}
# The port a worker or beat process serves its own /metrics on (Cloud Run also
# needs each service to listen on $PORT); 0 serves none.
CELERY_METRICS_PORT = env.int("CELERY_METRICS_PORT", default=0)
if REDIS_URL and REDIS_URL.startswith("rediss://"):
    import ssl

    # Kombu and Celery's result store take TLS as options, not from the URL.
    CELERY_BROKER_USE_SSL = CELERY_REDIS_BACKEND_USE_SSL = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": REDIS_SSL_CA_CERTS or None,
        "ssl_check_hostname": REDIS_SSL_CHECK_HOSTNAME,
    }

# --- Seat ledger ---------------------------------------------------------------------
# How long a license's Redis keys outlive its last lease. Leases that expired wait
# there for the expiry sweep, so this must be far longer than the sweep's period.
SEAT_LEDGER_REDIS_RETENTION = env.int("SEAT_LEDGER_REDIS_RETENTION", default=7 * 24 * 3600)
# Redis connections per process for the ledger; a caller waits up to a second
# (or REDIS_SOCKET_TIMEOUT if shorter) for a free one, then gets 503.
SEAT_LEDGER_REDIS_MAX_CONNECTIONS = env.int("SEAT_LEDGER_REDIS_MAX_CONNECTIONS", default=64)

# --- Operator console, analytics, background work ---------------------------------------
# Periodic work (seconds between runs). Celery beat runs it in production; in
# the embedded default `manage.py run_periodic` (started by bin/run-embedded)
# runs the same schedule in-process.
LEASE_EXPIRY_SWEEP_INTERVAL = env.float("LEASE_EXPIRY_SWEEP_INTERVAL", default=60.0)
# How soon the audit events the Redis ledger keeps with its releases and borrows
# reach the audit log (docs/architecture.md, "Audit events of the Redis ledger").
LEASE_EVENT_DRAIN_INTERVAL = env.float("LEASE_EVENT_DRAIN_INTERVAL", default=10.0)
ANALYTICS_ROLLUP_INTERVAL = env.float("ANALYTICS_ROLLUP_INTERVAL", default=600.0)
# Each rollup recomputes this many past hours (and the whole days they touch),
# so a late or missed run heals by itself; `manage.py usage_rollup` backfills more.
ANALYTICS_ROLLUP_LOOKBACK_HOURS = env.int("ANALYTICS_ROLLUP_LOOKBACK_HOURS", default=26)
AUDIT_EXPORT_INTERVAL = env.float("AUDIT_EXPORT_INTERVAL", default=3600.0)
# Audit export for retention, one JSON-lines file per tenant per closed UTC day:
# to a Cloud Storage bucket (under AUDIT_EXPORT_PREFIX) if set, else to a
# directory if set, else off. Each run also catches up the days it missed.
AUDIT_EXPORT_BUCKET = env.str("AUDIT_EXPORT_BUCKET", default="")
AUDIT_EXPORT_PREFIX = env.str("AUDIT_EXPORT_PREFIX", default="audit/")
AUDIT_EXPORT_DIR = env.str("AUDIT_EXPORT_DIR", default="")
AUDIT_EXPORT_LOOKBACK_DAYS = env.int("AUDIT_EXPORT_LOOKBACK_DAYS", default=7)
CELERY_BEAT_SCHEDULE.update(
    {
        "lease-expiry-sweep": {
            "task": "licenses.lease_expiry_sweep",
            "schedule": LEASE_EXPIRY_SWEEP_INTERVAL,
        },
        "lease-event-drain": {"task": "licenses.lease_events_drain", "schedule": LEASE_EVENT_DRAIN_INTERVAL},
        "usage-rollup": {"task": "analytics.usage_rollup", "schedule": ANALYTICS_ROLLUP_INTERVAL},
        "audit-export": {"task": "analytics.audit_export", "schedule": AUDIT_EXPORT_INTERVAL},
    }
)
# Monthly usage reports (analytics.report_services; docs/dashboard.md, "Reports"): beat
# runs the task daily at 02:30 UTC for the month before; the run of the 1st builds and
# emails each license's report, later ones find it sent. Reports are kept (on the
# dashboard) this many days after they were made, then a daily task deletes them.
MONTHLY_REPORT_RETENTION_DAYS = env.int("MONTHLY_REPORT_RETENTION_DAYS", default=365)
CELERY_BEAT_SCHEDULE.update(
    {
        "monthly-reports": {"task": "analytics.monthly_reports", "schedule": crontab(minute=30, hour=2)},
        "monthly-reports-prune": {"task": "analytics.monthly_reports_prune", "schedule": 86400.0},
    }
)
# Messages ride in the session, not in a cookie: a console message may carry a
# secret shown once (a webhook endpoint's), and a cookie is signed, not sealed.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# The tenant dashboard signs in with its own page; a session lasts a working day.
DASHBOARD_SESSION_AGE = env.int("DASHBOARD_SESSION_AGE", default=12 * 3600)

# --- Email (django-anymail; issue 15) ------------------------------------------------
# SendGrid through anymail when SENDGRID_API_KEY (or SENDGRID_API_KEY_FILE) is set;
# otherwise Django's console backend (`make run` prints each message to its
# terminal). EMAIL_BACKEND names any other backend outright (the file backend:
# django.core.mail.backends.filebased.EmailBackend, writing under EMAIL_FILE_PATH).
# Mail is sent by Celery tasks enqueued on commit (accounts.tasks, licenses.tasks);
# a failed send retries EMAIL_SEND_RETRIES times with exponential backoff.
SENDGRID_API_KEY = secret("SENDGRID_API_KEY", "") or ""
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="anymail.backends.sendgrid.EmailBackend"
    if SENDGRID_API_KEY
    else "core.email.ConsoleToStderrBackend",
)
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CODITECT <no-reply@localhost>")
# Seconds one call to SendGrid's API may take (anymail's REQUESTS_TIMEOUT).
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
ANYMAIL = {"SENDGRID_API_KEY": SENDGRID_API_KEY, "REQUESTS_TIMEOUT": EMAIL_TIMEOUT}
EMAIL_SEND_RETRIES = env.int("EMAIL_SEND_RETRIES", default=5)
# Where links in emails point (the claim page, the invite's registration): this
# server's public address, no trailing slash.
EMAIL_LINK_BASE_URL = env.str("EMAIL_LINK_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# "License expiring soon": one notice per license at each of these many days
# before its expiry (a periodic task, EMAIL_EXPIRY_NOTICE_INTERVAL seconds apart).
EMAIL_EXPIRY_NOTICE_DAYS = sorted({int(d) for d in env.list("EMAIL_EXPIRY_NOTICE_DAYS", default=["14", "3"])})
EMAIL_EXPIRY_NOTICE_INTERVAL = env.float("EMAIL_EXPIRY_NOTICE_INTERVAL", default=3600.0)
# "Seats near the limit": when an acquire leaves at least this share of a
# license's seats in use; at most once a day per license.
EMAIL_SEATS_NEAR_LIMIT_SHARE = env.float("EMAIL_SEATS_NEAR_LIMIT_SHARE", default=0.9)
# How long a license-delivery claim link and a password-reset link stay good.
LICENSE_CLAIM_LIFETIME_HOURS = env.int("LICENSE_CLAIM_LIFETIME_HOURS", default=72)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
# At most one reset email per account this many seconds apart (0: no limit).
PASSWORD_RESET_EMAIL_INTERVAL = env.int("PASSWORD_RESET_EMAIL_INTERVAL", default=300)
CELERY_BEAT_SCHEDULE.update(
    {
        "license-expiry-notices": {
            "task": "licenses.expiry_notices",
            "schedule": EMAIL_EXPIRY_NOTICE_INTERVAL,
        },
    }
)

# --- Outbound webhooks (webhooks/; docs/operations.md, "Outbound webhooks") -------------
# Standard Webhooks-signed POSTs of audit events to the endpoints that subscribe.
# A target must be https:// (http:// only with DEBUG); loopback only with DEBUG;
# private, link-local and reserved ranges only with WEBHOOK_ALLOW_PRIVATE_TARGETS.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# A PEM bundle of CAs trusted for https:// targets besides the system's (receivers
# with certificates of a private CA); empty: the system's trust only.
WEBHOOK_CA_FILE = env.str("WEBHOOK_CA_FILE", default="")
if WEBHOOK_CA_FILE and not Path(WEBHOOK_CA_FILE).is_file():
    raise ImproperlyConfigured(f"WEBHOOK_CA_FILE={WEBHOOK_CA_FILE} is not a file.")
# Each try: connect and answer within this many seconds; at most this much of the answer is read.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_RESPONSE_MAX_BYTES = env.int("WEBHOOK_RESPONSE_MAX_BYTES", default=4096)
# A failed try is retried after base * 2^(n-1) seconds (capped; half of it random),
# at most WEBHOOK_MAX_ATTEMPTS tries per delivery.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=6 * 3600.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# This many failed tries in a row (across deliveries) disable an endpoint and email its admins.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=15)
# ...and only once the endpoint has been failing this long (seconds; default 3 days).
WEBHOOK_DISABLE_AFTER_SECONDS = env.float("WEBHOOK_DISABLE_AFTER_SECONDS", default=3 * 86400.0)
# How often retries that fell due (and messages whose enqueue was lost) are sent.
WEBHOOK_DELIVERY_SWEEP_INTERVAL = env.float("WEBHOOK_DELIVERY_SWEEP_INTERVAL", default=15.0)
# How long a process keeps which events a tenant's endpoints subscribe to.
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = env.float("WEBHOOK_SUBSCRIPTION_CACHE_SECONDS", default=5.0)
# The most endpoints a tenant may have, and the operator-wide ones (each event
# fans out to every endpoint that subscribes to it, on workers all tenants share).
WEBHOOK_MAX_ENDPOINTS_PER_TENANT = env.int("WEBHOOK_MAX_ENDPOINTS_PER_TENANT", default=10)
WEBHOOK_MAX_OPERATOR_ENDPOINTS = env.int("WEBHOOK_MAX_OPERATOR_ENDPOINTS", default=50)
# Finished deliveries (and their tries) older than this many days are deleted
# by a periodic task (`manage.py prune_webhook_deliveries` without a broker).
WEBHOOK_DELIVERY_RETENTION_DAYS = env.int("WEBHOOK_DELIVERY_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE["webhook-deliveries-sweep"] = {
    "task": "webhooks.deliveries_sweep",
    "schedule": WEBHOOK_DELIVERY_SWEEP_INTERVAL,
}
CELERY_BEAT_SCHEDULE["webhook-deliveries-prune"] = {"task": "webhooks.deliveries_prune", "schedule": 86400.0}

# --- Stripe (billing/; docs/operations.md, "Stripe") --------------------------------------
# The webhook's signing secret (whsec_…, from the Stripe dashboard's endpoint); empty: the
# endpoint answers 503 and acts on nothing. STRIPE_API_KEY (a restricted key that may read
# Checkout Sessions) is used only to read a session's line items when the vendor did not put
# `price_id` and `quantity` in its metadata; each call waits at most STRIPE_API_TIMEOUT seconds.
STRIPE_WEBHOOK_SECRET = secret("STRIPE_WEBHOOK_SECRET", "") or ""
STRIPE_API_KEY = secret("STRIPE_API_KEY", "") or ""
STRIPE_API_TIMEOUT = env.float("STRIPE_API_TIMEOUT", default=10.0)
# Days a license keeps working after a failed payment (invoice.payment_failed) before the
# sweep, every STRIPE_PAYMENT_GRACE_SWEEP_INTERVAL seconds, suspends it; a paid invoice resumes it.
STRIPE_PAYMENT_GRACE_DAYS = env.int("STRIPE_PAYMENT_GRACE_DAYS", default=7)
STRIPE_PAYMENT_GRACE_SWEEP_INTERVAL = env.float("STRIPE_PAYMENT_GRACE_SWEEP_INTERVAL", default=3600.0)
CELERY_BEAT_SCHEDULE["stripe-payment-grace-sweep"] = {
    "task": "billing.payment_grace_sweep",
    "schedule": STRIPE_PAYMENT_GRACE_SWEEP_INTERVAL,
}
