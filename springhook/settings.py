"""Springhook settings: every value that varies between machines comes from the environment.

Sections: environment, core Django, HTTPS, database, apps, static files, mail, logging,
Celery, webhooks (the product's own knobs, each documented where it is read). Every
variable is also listed, with a production value, in .env.example.
"""

import zlib
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

from springhook.env import (
    ConfigurationError,
    env_bool,
    env_float,
    env_int,
    env_seconds_list,
    env_str,
    env_url,
)
from springhook.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Environment -------------------------------------------------------------------------
# "development" (the default, for a fresh clone) or "production". Production turns DEBUG
# off (and refuses DJANGO_DEBUG=1), HTTPS on, and refuses to start without the variables
# below.
SPRINGHOOK_ENV = env_str("SPRINGHOOK_ENV", "development")
if SPRINGHOOK_ENV not in ("development", "production"):
    raise ConfigurationError(
        f"SPRINGHOOK_ENV must be 'development' or 'production', got {SPRINGHOOK_ENV!r}"
    )
PRODUCTION = SPRINGHOOK_ENV == "production"
if PRODUCTION:
    # No development fallback for these in production: a missing one stops every process
    # (web, worker, beat, migrate) at start, instead of running on a throwaway key, on a
    # local SQLite file, answering no host at all, or sending partners localhost URLs.
    _missing = [
        name
        for name in ("DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "DATABASE_URL", "API_BASE_URL")
        if not env_str(name, "").strip()
    ]
    if _missing:
        raise ConfigurationError(
            f"SPRINGHOOK_ENV=production needs {', '.join(_missing)} set in the environment"
            " (see .env.example)"
        )

# --- Core Django -------------------------------------------------------------------------
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or "development-only-insecure-key-do-not-use"
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)
if PRODUCTION and DEBUG:
    # DEBUG shows tracebacks and settings to anyone, and keeps every SQL query in memory.
    raise ConfigurationError(
        "DJANGO_DEBUG=1 is refused with SPRINGHOOK_ENV=production: DEBUG pages show"
        " tracebacks and settings to anyone; unset DJANGO_DEBUG"
    )
ALLOWED_HOSTS = [
    host.strip()
    for host in env_str("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
    if host.strip()
]

ROOT_URLCONF = "springhook.urls"
WSGI_APPLICATION = "springhook.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE) serve the dashboard on PostgreSQL; SQLite builds them as plain
# indexes, which is all it needs.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS -------------------------------------------------------------------------------
# Production is served over HTTPS only, behind a proxy that ends TLS. Each setting can be
# changed for a deployment that handles it elsewhere.
# Whether a request came over HTTPS is the WSGI server's to say: gunicorn sets the scheme
# from X-Forwarded-Proto only for requests from FORWARDED_ALLOW_IPS (gunicorn.conf.py).
# SECURE_PROXY_SSL_HEADER stays unset, so Django never believes that header from whoever
# sends it.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", PRODUCTION)
# Health probes and Prometheus scrapes come from inside the private network, over plain
# HTTP (METRICS_TOKEN, below, keeps /metrics to the scraper).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Browsers remember "HTTPS only" for this long (a year in production; 0 turns HSTS off).
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0,
                              minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", PRODUCTION)
SESSION_COOKIE_SECURE = PRODUCTION
# Django's defaults, said here because the partner portal relies on them: scripts never read
# the session cookie, and other sites' pages never send it along with a form they POST.
# Lax, not Strict: a sign-in link opened from a mail must carry the new session through
# its redirect.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = PRODUCTION
# Origins (scheme://host[:port], comma-separated) allowed to POST to the admin besides the
# site's own, e.g. when the proxy serves it under another name.
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in env_str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

# --- Database ----------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user@127.0.0.1:5432/springhook; a SQLite file by default.
try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}").strip(),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            # A kept connection is checked before a request reuses it, so that after a
            # database restart the first request of each process reconnects instead of
            # failing on the dead connection.
            conn_health_checks=True,
        )
    }
except ValueError as error:  # an unknown scheme, or not a URL at all
    raise ConfigurationError(
        f"DATABASE_URL must be a database URL like postgres://user@host:5432/name: {error}"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Test databases are named after the checkout, so that test runs of two working
    # copies on one PostgreSQL server never drop each other's database.
    DATABASES["default"]["TEST"] = {
        "NAME": env_str(
            "DATABASE_TEST_NAME",
            f"test_{DATABASES['default']['NAME']}_{zlib.crc32(str(BASE_DIR).encode()):08x}",
        )
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has several threads writing (server, dispatcher): wait for the
    # write lock instead of failing at once, and take it at BEGIN so that a read-then-write
    # transaction never has to be restarted.
    # WAL lets the server read while the dispatcher writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        }
    )
    # Tests use a file, not Django's shared-cache in-memory database: there, threads get
    # "table is locked" at once instead of waiting, unlike any real deployment.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}

# --- Apps --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "catalog",
    "apikeys",
    "changes",
    "webhooks",
    "deliveries",
    # The partner portal (/portal/), above the apps whose services it calls.
    "portal",
    # last: its management commands (demo data, demo admin) wire the apps together
    "springhook",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside CommonMiddleware, so that its slash redirects pass as they are.
    "springhook.middleware.JsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Static files ------------------------------------------------------------------------
STATIC_URL = "static/"
# Where `collectstatic` gathers the files (the Docker image does it at build time).
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Production serves the collected files, compressed and under content-hashed names that
# browsers may cache forever. Development serves them straight from the apps, so that a
# fresh clone (and the test suite) needs no collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Mail and admins ---------------------------------------------------------------------
# Staff are mailed when a webhook fails for over an hour, when it recovers and when it
# answers 410; never about a server error, which is a log line (see Logging).
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
ADMINS = [
    ("", address.strip())
    for address in env_str("DJANGO_ADMINS", "").split(",")
    if address.strip()
]
SERVER_EMAIL = env_str("DJANGO_SERVER_EMAIL", "springhook@localhost")
# The SMTP server, for DJANGO_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend.
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_SUBJECT_PREFIX = "[Springhook] "

# --- Logging -----------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ConfigurationError(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
# One logfmt line per record on stdout, for every process (springhook/logs.py); Celery
# worker and beat use the same at their --loglevel.
LOGGING = logging_config(level=LOG_LEVEL)
# Error reports (the DEBUG page, an error mail if a deployment adds one) mask every secret
# of the settings and the request: broker and database passwords, API keys, tokens.
DEFAULT_EXCEPTION_REPORTER_FILTER = "springhook.errorreports.SecretsFilter"
DEFAULT_EXCEPTION_REPORTER = "springhook.errorreports.SecretsReporter"

# --- Celery ------------------------------------------------------------------------------
# Without CELERY_BROKER_URL Springhook runs the embedded dispatcher
# (`python manage.py run_dispatcher`) and needs no broker at all.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "").strip()
if CELERY_BROKER_URL and urlsplit(CELERY_BROKER_URL).scheme not in TRANSPORT_ALIASES:
    raise ConfigurationError(
        # Not the value itself: it may carry the broker's password.
        "CELERY_BROKER_URL must be a broker URL like redis://127.0.0.1:6379/0, got one"
        f" with the scheme {urlsplit(CELERY_BROKER_URL).scheme!r}"
    )
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# The tick's own queue keeps it from waiting behind delivery tasks (docs/operations.md).
CELERY_TASK_QUEUES = [Queue("celery"), Queue("dispatch")]
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {"deliveries.dispatch_tick": {"queue": "dispatch"}}

# --- Webhooks ----------------------------------------------------------------------------
# Base of the `url` of every change entry: API_BASE_URL + /trainings/<id>. An http(s) URL
# with a host; production requires it (partners could not use a localhost default).
API_BASE_URL = env_url("API_BASE_URL", "http://localhost:8000")
# Seconds the oldest undelivered change of a webhook waits so that later edits bundle with
# it; a webhook can override it.
WEBHOOK_BUNDLE_DELAY = env_float("WEBHOOK_BUNDLE_DELAY", 30, minimum=0)
# Entries per POST at most; a full batch goes out without waiting for the delay.
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 500, minimum=1)
# Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats forever.
# Each wait gets up to 10% of jitter so that partners coming back are not hit in step.
WEBHOOK_RETRY_SCHEDULE = env_seconds_list("WEBHOOK_RETRY_SCHEDULE", "10,30,60,300,900,1800,3600")
# Connecting to a partner may take this long; the whole attempt (connect, send, read the
# answer) at most WEBHOOK_TIMEOUT.
WEBHOOK_CONNECT_TIMEOUT = env_float("WEBHOOK_CONNECT_TIMEOUT", 5, minimum=0.1)
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 15, minimum=0.1)
# A claimed batch is leased for connect + total timeout + this margin (seconds): a live
# worker always records before its lease ends, and a killed worker's batch is sent again
# (same webhook-id) once the lease has run out. Tests shorten it to see that happen fast.
WEBHOOK_LEASE_MARGIN = env_float("WEBHOOK_LEASE_MARGIN", 30, minimum=0.5)
# 1 allows loopback and private-network URLs: local development and tests only.
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
# Accepted deliveries (and their attempts) are kept this many days for the history.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30, minimum=1)
# How often the dispatcher looks for due work (the Celery beat period, the embedded loop).
WEBHOOK_TICK_SECONDS = env_float("WEBHOOK_TICK_SECONDS", 1, minimum=0.05)
# /healthz answers 503 when the dispatcher (embedded, or Celery beat + worker) has not
# ticked for this many seconds.
HEALTHZ_MAX_TICK_AGE = env_float("HEALTHZ_MAX_TICK_AGE", 60, minimum=1)
# When set, /metrics answers only requests with `Authorization: Bearer <METRICS_TOKEN>`
# (its gauges name every webhook); when empty, anyone who can reach it may read it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "").strip()
# Sends in flight at once per dispatcher process (or per Celery worker process): each
# webhook has at most one, so a partner hanging to the timeout holds only its own.
WEBHOOK_SENDS_IN_FLIGHT = env_int("WEBHOOK_SENDS_IN_FLIGHT", 200, minimum=1)
# Accepted deliveries older than WEBHOOK_RETENTION_DAYS are pruned this often (seconds),
# by the embedded dispatcher and by Celery beat alike.
WEBHOOK_PRUNE_SECONDS = env_float("WEBHOOK_PRUNE_SECONDS", 60, minimum=1)
# A partner may ask for the whole catalogue (POST /webhooks/<id>/resync) once per this many
# seconds per webhook, and once per this many seconds per API key whichever of its webhooks;
# sooner is answered 429 with Retry-After. Staff are not limited.
WEBHOOK_RESYNC_INTERVAL = env_float("WEBHOOK_RESYNC_INTERVAL", 600, minimum=0)
# The same for test events (POST /webhooks/<id>/test): once per this many seconds per
# webhook and per API key. Each is a delivery kept WEBHOOK_RETENTION_DAYS.
WEBHOOK_TEST_INTERVAL = env_float("WEBHOOK_TEST_INTERVAL", 60, minimum=0)

# --- Imports -----------------------------------------------------------------------------
# The largest feed import_trainings accepts (bytes). The import streams the feed a chunk of
# records at a time: its memory is about 80 MiB whatever the number of records, and at most
# 60 MiB plus 4.5 MiB per MiB for the worst feed (one record as large as the feed), so the
# default needs at most ~350 MiB (docs/operations.md, "Imports and memory"). 64 MiB is
# ~170,000 trainings of ~370 bytes per institute.
IMPORT_MAX_FEED_BYTES = env_int("IMPORT_MAX_FEED_BYTES", 64 * 1024 * 1024, minimum=1)

# --- Partner portal ----------------------------------------------------------------------
# Seconds a portal sign-in link works (once) after it was made.
PORTAL_LINK_LIFETIME = env_int("PORTAL_LINK_LIFETIME", 1800, minimum=1)
# Seconds a portal session lasts at most from its sign-in (a working day by default);
# signing out ends it sooner.
PORTAL_SESSION_MAX_AGE = env_int("PORTAL_SESSION_MAX_AGE", 8 * 3600, minimum=60)
