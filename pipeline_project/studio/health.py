"""Health of the parts the site depends on, for /healthz and the dashboard."""

from django.conf import settings
from django.db import connection

from pipeline_project.fileops.clamav import ClamdAddress, ping


def clamd_address(*, max_timeout: float | None = None) -> ClamdAddress:
    """clamd from settings. Scans wait the full CLAMD_TIMEOUT (a large file takes a while);
    the health check caps it, so a load balancer's probe never hangs."""
    timeout = (
        settings.CLAMD_TIMEOUT if max_timeout is None else min(settings.CLAMD_TIMEOUT, max_timeout)
    )
    return ClamdAddress(
        socket=settings.CLAMD_SOCKET,
        host=settings.CLAMD_HOST,
        port=settings.CLAMD_PORT,
        timeout=timeout,
    )


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "vendor": connection.vendor}


def check_redis() -> dict:
    if settings.JOBS_INLINE:
        return {"ok": True, "mode": "inline"}
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return {"ok": False, "mode": "redis", "error": str(exc)}
    return {"ok": True, "mode": "redis"}


def check_clamd() -> dict:
    address = clamd_address(max_timeout=5)
    if not address.is_configured():
        return {"ok": True, "configured": False}
    ok, detail = ping(address)
    return {"ok": ok, "configured": True, "version" if ok else "error": detail}


def health() -> dict:
    checks = {"database": check_database(), "redis": check_redis(), "clamd": check_clamd()}
    failing = [name for name, result in checks.items() if not result["ok"]]
    return {"status": "ok" if not failing else "failing", "failing": failing, "checks": checks}


PUBLIC_KEYS = {"ok", "mode", "configured", "vendor"}


def public_report(report: dict) -> dict:
    """The report without error text or versions, for callers who are not staff."""
    checks = {
        name: {k: v for k, v in check.items() if k in PUBLIC_KEYS}
        for name, check in report["checks"].items()
    }
    return {**report, "checks": checks}
