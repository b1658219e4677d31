import hashlib

import pytest


@pytest.fixture
def sites_root(settings, tmp_path):
    settings.COLOUR_SITES_ROOT = tmp_path / "sites"
    settings.MAM_DROP_FOLDER = tmp_path / "mam"
    settings.MAM_TARGET = "folder"
    return settings.COLOUR_SITES_ROOT


@pytest.fixture
def colour_people(make_user):
    return {
        role: make_user(role, username=f"c_{role}")
        for role in ("colorist", "engineer", "readonly", "admin", "artist")
    }


@pytest.fixture
def make_site(sites_root, colour_people):
    from colour_routing import services

    def make(code):
        return services.site_create(by=colour_people["admin"], code=code, name=code.title())

    return make


@pytest.fixture
def daemon_client():
    """An API client that calls as a site daemon: `daemon_client(key)`."""
    from rest_framework.test import APIClient

    def make(key):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=key)
        return client

    return make


def media_bytes(name="clip.mov", size=200_000):
    data = (name.encode() + b"\x00frame") * (size // (len(name) + 6) + 1)
    return data[:size], hashlib.sha256(data[:size]).hexdigest()


class WebServer:
    """The site served by gunicorn with deploy/gunicorn.conf.py (gthread, keep-alive), in a
    child process on the test database; stop() and start() again keep the same port."""

    def __init__(self, env: dict, log_path):
        from sitedaemon.tests.process import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env | {
            "GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{self.port} --workers 2 --graceful-timeout 2"
        }
        self.log_path = log_path
        self.process = None

    def start(self):
        import subprocess
        import sys
        from pathlib import Path

        from sitedaemon.tests.process import REPO, wait_until

        gunicorn = Path(sys.executable).with_name("gunicorn")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "--config", "deploy/gunicorn.conf.py"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.answers, timeout=30, what=f"gunicorn on {self.url}", interval=0.1)
        return self

    def answers(self) -> bool:
        import urllib.request

        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:  # noqa: S310
                return response.status in (200, 503)
        except OSError:
            return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def web_server(subprocess_env, sites_root, tmp_path):
    """`web_server.start()` serves the site on a free port (gunicorn, the production config)."""
    server = WebServer(
        subprocess_env | {"COLOUR_SITES_ROOT": str(sites_root), "MAM_TARGET": ""},
        tmp_path / "gunicorn.log",
    )
    yield server
    server.stop()


@pytest.fixture
def rq_worker(settings, redis_url, subprocess_env, sites_root):
    """Real RQ on Redis: `rq_worker("transfer")` runs a burst worker (with the scheduler, so
    retries that are due run) in a child process sharing the test database, the sites root
    and the MAM settings; `rq_worker.start(...)` returns the process without waiting."""
    import subprocess
    import sys

    from sitedaemon.tests.process import REPO

    settings.JOBS_INLINE = False
    settings.REDIS_URL = redis_url
    settings.RQ_QUEUES = {
        n: {"URL": redis_url, "DEFAULT_TIMEOUT": 600, "ASYNC": True} for n in settings.JOB_QUEUES
    }

    def env():  # read at run time: tests change the MAM settings after this fixture
        return subprocess_env | {
            "REDIS_URL": redis_url,
            "COLOUR_SITES_ROOT": str(settings.COLOUR_SITES_ROOT),
            "MAM_TARGET": settings.MAM_TARGET,
            "MAM_DROP_FOLDER": str(settings.MAM_DROP_FOLDER),
            "MAM_WEBHOOK_URL": settings.MAM_WEBHOOK_URL,
            "MAM_WEBHOOK_SECRET": settings.MAM_WEBHOOK_SECRET,
        }

    def command(*queues):
        return [sys.executable, "manage.py", "rqworker", *queues, "--burst", "--with-scheduler"]

    def run(*queues):
        result = subprocess.run(
            command(*queues), cwd=REPO, env=env(), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    def start(*queues):
        return subprocess.Popen(
            command(*queues),
            cwd=REPO,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    run.start = start
    return run


@pytest.fixture
def uploaded_file(make_site, colour_people):
    """uploaded_file(path, data) -> a MediaFile detected at Tustin, uploaded, validated and
    queued for Nashville, as the daemon and an engineer would leave it."""
    import io

    from colour_routing import services
    from colour_routing.models import Site

    def make(path="A001/A001_C002_0101.mov", data=None, state="queued"):
        tustin = Site.objects.filter(code="tustin").first() or make_site("tustin")[0]
        nashville = Site.objects.filter(code="nashville").first() or make_site("nashville")[0]
        if data is None:
            data, _ = media_bytes(path)
        media, _ = services.file_register(
            site=tustin, path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest()
        )
        media = services.file_store_upload(media=media, stream=io.BytesIO(data), length=len(data))
        engineer = colour_people["engineer"]
        media = services.file_validate(media=media, by=engineer)
        if state == "queued":
            media = services.file_queue(media=media, by=engineer, destination=nashville)
        return media

    return make


@pytest.fixture
def receiver():
    """A MAM webhook receiver on 127.0.0.1 (tests/receiver.py), running for the test."""
    from .receiver import Receiver

    with Receiver() as running:
        yield running
