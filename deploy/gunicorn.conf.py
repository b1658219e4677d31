"""gunicorn settings for the Studio Pipeline web process.

Used by deploy/studio-pipeline-web.service:
    gunicorn --config deploy/gunicorn.conf.py
Run from the repository root with the production environment loaded (see
deploy/env.production.example). Any setting here can be overridden for one run with
GUNICORN_CMD_ARGS, e.g. GUNICORN_CMD_ARGS="--workers 8".
"""

import multiprocessing
import os

wsgi_app = "pipeline_project.wsgi:application"

# nginx on the same host proxies to this address (deploy/nginx.conf). Keep it on loopback:
# the app trusts X-Forwarded-Proto/-For only because nothing but nginx can reach it.
bind = "127.0.0.1:8000"

# Threads let one process serve several slow clients (HTMX progress polls, API calls from DCC
# tools) while another request waits on the database.
worker_class = "gthread"
workers = min(multiprocessing.cpu_count() + 1, 8)
threads = 4

# A worker that stops answering the arbiter for this long is restarted. With gthread a long
# request does not trip it; nginx buffers uploads, so gunicorn receives bodies at local speed.
timeout = 120
# On stop or reload, requests in flight get this long to finish.
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then so a slow leak cannot grow for weeks.
max_requests = 2000
max_requests_jitter = 200

# Requests come from nginx on this host; only it may set X-Forwarded-* for gunicorn.
forwarded_allow_ips = "127.0.0.1,::1"

# Everything to stdout/stderr: systemd puts it in the journal.
accesslog = "-"
errorlog = "-"
loglevel = "info"
access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

proc_name = "studio-pipeline-web"

# gunicornc's control socket: under systemd in the unit's RuntimeDirectory (/run/...), since the
# service user has no home directory; elsewhere gunicorn's default.
if os.environ.get("RUNTIME_DIRECTORY"):
    control_socket = os.path.join(os.environ["RUNTIME_DIRECTORY"].split(":")[0], "gunicorn.ctl")
