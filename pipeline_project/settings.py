"""Studio Pipeline settings: one file, driven by environment variables.

Defaults give the embedded set-up (SQLite file, jobs inline, no services). Every variable is
listed in `.env.example`. With DEBUG off, missing secrets stop start-up with a clear message.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- typed environment helpers ------------------------------------------------------------
def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    return Path(env_str(name) or default).expanduser().resolve()


# --- core ---------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")

if DEBUG:
    SECRET_KEY = SECRET_KEY or "django-insecure-dev-only-key-never-use-in-production"
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["127.0.0.1", "localhost", "[::1]"]
else:
    missing = [
        n for n, v in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS)) if not v
    ]
    if missing:
        raise ImproperlyConfigured(
            f"DEBUG is off and {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not set. Set them in the environment (see .env.example), or set DEBUG=1 for "
            "local development only."
        )

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_NAME = env_str("SITE_NAME", "Studio Pipeline")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "django_rq",
    "pipeline_project.accounts",
    "pipeline_project.studio",
    "transfers",
    "colour_routing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "pipeline_project.urls"
WSGI_APPLICATION = "pipeline_project.wsgi.application"
ASGI_APPLICATION = "pipeline_project.asgi.application"

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
                "pipeline_project.studio.context_processors.site",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------
# DATABASE_URL=postgres://user:pass@host:5432/name selects PostgreSQL (psycopg 3).
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "var")
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # A file-backed test database lets subprocesses (rq workers, daemons) share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test_db.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "studio:home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Local accounts first: the break-glass admin logs in even while the directory is down.
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

LDAP_ENABLED = env_bool("LDAP_ENABLED", False)
if LDAP_ENABLED:
    from pipeline_project.accounts.ldap_settings import ldap_settings_from_env

    globals().update(ldap_settings_from_env(env_str, env_bool, env_int))
    AUTHENTICATION_BACKENDS.append("pipeline_project.accounts.ldap.StudioLDAPBackend")

# API tokens for DCC tools and scripts: hashed at rest by django-rest-knox.
KNOX_TOKEN_MODEL = "accounts.ApiToken"  # noqa: S105 (a model name)
# knox's own migrations create its default token table even when the model is swapped; ours
# (accounts.ApiToken) replaces it, so knox is left unmigrated and gets no table.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "TOKEN_TTL": None,  # each token carries the expiry its owner chose
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_PREFIX": "sp_",
    "AUTO_REFRESH": False,
}

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "pipeline_project.accounts.auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "pipeline_project.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pipeline_project.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Studio Pipeline API",
    "DESCRIPTION": "Transfers, colour routing, publishes, the asset depot and ETL for one studio. "
    "Authenticate with `Authorization: Token <token>` (create tokens on your Tokens page).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` field; give each choice set its own schema name.
    "ENUM_NAME_OVERRIDES": {
        "TransferStatusEnum": "transfers.models.Status",
        "ProjectStatusEnum": "pipeline_project.studio.models.Project.Status",
        "JobRunStatusEnum": "pipeline_project.studio.models.JobRun.Status",
        "ScanStatusEnum": "transfers.models.TransferFile.ScanStatus",
    },
}

# --- jobs (django-rq) ---------------------------------------------------------------------
# Without REDIS_URL jobs run inline, in the web process, right after the transaction commits.
REDIS_URL = env_str("REDIS_URL")
JOBS_INLINE = not REDIS_URL
JOB_QUEUES = ("default", "scanning", "transfer", "etl", "notifications")
RQ_QUEUES = {
    name: {
        "URL": REDIS_URL or "redis://127.0.0.1:6379/0",
        "DEFAULT_TIMEOUT": env_int("RQ_DEFAULT_TIMEOUT", 6 * 3600),
        "ASYNC": not JOBS_INLINE,
    }
    for name in JOB_QUEUES
}
RQ = {"COMMIT_MODE": "on_db_commit"}
RQ_SHOW_ADMIN_LINK = not JOBS_INLINE  # the dashboard needs a real Redis

# --- services -----------------------------------------------------------------------------
# clamd: a local socket (CLAMD_SOCKET) or TCP (CLAMD_HOST + CLAMD_PORT). Unset = not configured.
CLAMD_SOCKET = env_str("CLAMD_SOCKET")
CLAMD_HOST = env_str("CLAMD_HOST")
CLAMD_PORT = env_int("CLAMD_PORT", 3310)
CLAMD_TIMEOUT = env_int("CLAMD_TIMEOUT", 30)

SHOTGRID_ENABLED = env_bool("SHOTGRID_ENABLED", False)
SHOTGRID_URL = env_str("SHOTGRID_URL")
SHOTGRID_SCRIPT_NAME = env_str("SHOTGRID_SCRIPT_NAME")
SHOTGRID_API_KEY = env_str("SHOTGRID_API_KEY")
if SHOTGRID_ENABLED and not (SHOTGRID_URL and SHOTGRID_SCRIPT_NAME and SHOTGRID_API_KEY):
    raise ImproperlyConfigured(
        "SHOTGRID_ENABLED is on: set SHOTGRID_URL, SHOTGRID_SCRIPT_NAME and SHOTGRID_API_KEY."
    )

# --- transfers -----------------------------------------------------------------------------
# Every file the site touches lies under one of these roots (fileops.confine enforces it).
STAGING_ROOT = env_path("STAGING_ROOT", DATA_DIR / "staging")
PRODUCTION_ROOT = env_path("PRODUCTION_ROOT", DATA_DIR / "production")
QUARANTINE_ROOT = env_path("QUARANTINE_ROOT", DATA_DIR / "quarantine")
# Start the verified copy to production as soon as a scan comes back clean (else IT starts it).
AUTO_TRANSFER = env_bool("AUTO_TRANSFER", True)
# Where a verified copy is read back from (fileops reads it from the environment; checked
# here so that a typo stops the site at start, not the first transfer).
FILEOPS_READBACK = env_str("FILEOPS_READBACK", "auto").strip().lower() or "auto"
if FILEOPS_READBACK not in ("auto", "storage", "cache"):
    raise ImproperlyConfigured(
        f"FILEOPS_READBACK must be auto, storage or cache, got {FILEOPS_READBACK!r}."
    )
# Whether a person may approve a stage of their own request (admins acting for a stage included).
TRANSFERS_ALLOW_SELF_APPROVAL = env_bool("TRANSFERS_ALLOW_SELF_APPROVAL", False)
# Largest upload accepted through the browser, in MiB (bigger deliveries go through staging).
TRANSFERS_MAX_UPLOAD_MB = env_int("TRANSFERS_MAX_UPLOAD_MB", 20 * 1024)
# First delay before a failed scan (clamd unreachable) is retried; it doubles each time.
SCAN_RETRY_FIRST_DELAY = env_int("SCAN_RETRY_FIRST_DELAY", 15)
# A running job that has written no progress for this long is taken for dead (its worker was
# killed): the same work may then be started again. Live jobs write progress every second or so.
JOB_STALE_AFTER = env_int("JOB_STALE_AFTER", 300)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

# --- colour routing ------------------------------------------------------------------------
# Every site's storage root must lie under this folder (mount the sites there, e.g.
# /mnt/sites/tustin); nothing outside it is read or written for colour routing.
COLOUR_SITES_ROOT = env_path("COLOUR_SITES_ROOT", DATA_DIR / "sites")
COLOUR_MEDIA_TYPES = env_list(
    "COLOUR_MEDIA_TYPES", ".mov,.mxf,.mp4,.m4v,.avi,.dpx,.exr,.tif,.tiff,.r3d,.braw,.ari,.wav"
)
# MAM delivery: "folder" (file + JSON sidecar into MAM_DROP_FOLDER), "webhook" (signed POST to
# MAM_WEBHOOK_URL), or empty for none (delivery is then recorded only).
MAM_TARGET = env_str("MAM_TARGET")
MAM_DROP_FOLDER = env_path("MAM_DROP_FOLDER", DATA_DIR / "mam-drop")
MAM_WEBHOOK_URL = env_str("MAM_WEBHOOK_URL")
MAM_WEBHOOK_SECRET = env_str("MAM_WEBHOOK_SECRET")
MAM_RETRY_FIRST_DELAY = env_int("MAM_RETRY_FIRST_DELAY", 30)
TRANSFER_RETRY_FIRST_DELAY = env_int("TRANSFER_RETRY_FIRST_DELAY", 30)
if MAM_TARGET not in ("", "folder", "webhook"):
    raise ImproperlyConfigured("MAM_TARGET must be folder, webhook or empty.")
if MAM_TARGET == "webhook" and not (MAM_WEBHOOK_URL and MAM_WEBHOOK_SECRET):
    raise ImproperlyConfigured("MAM_TARGET=webhook needs MAM_WEBHOOK_URL and MAM_WEBHOOK_SECRET.")

# --- e-mail -------------------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG or not env_str("EMAIL_HOST")
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "pipeline@localhost")
NOTIFY_BY_EMAIL = env_bool("NOTIFY_BY_EMAIL", True)

# --- i18n, static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "staticfiles")
if STATIC_ROOT.is_relative_to(DATA_DIR):
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Production serves hashed, compressed files (run `manage.py collectstatic`).
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# --- security (production) ----------------------------------------------------------------
# HTTPS=1 when the site is served over TLS (directly or behind a proxy that sets
# X-Forwarded-Proto, with BEHIND_PROXY=1): secure cookies, redirect to https, HSTS.
HTTPS = env_bool("HTTPS", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY") else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# /healthz is probed by load balancers over plain HTTP on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django_auth_ldap": {"level": env_str("LDAP_LOG_LEVEL", "WARNING")},
        "rq.worker": {"level": "INFO"},
    },
}
