"""A MAM webhook receiver on 127.0.0.1 for the tests: it checks signatures the way a MAM would
and answers with what the test tells it to."""

import http.server
import threading
import time

from colour_routing import mam

SECRET = "mam-shared-secret"


class Receiver:
    """A MAM endpoint on 127.0.0.1: answers each POST with the next of `answers` (then 200),
    refusing with 401 any request whose signature does not verify with `secret`."""

    def __init__(self):
        self.answers: list[tuple[int, str]] = []
        self.requests: list[dict] = []
        self.secret = SECRET
        self.delay = 0.0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verified = mam.verify_signature(
                    receiver.secret,
                    body,
                    self.headers["X-Pipeline-Timestamp"],
                    self.headers["X-Pipeline-Signature"],
                )
                receiver.requests.append(
                    {"path": self.path, "headers": self.headers, "body": body, "ok": verified}
                )
                time.sleep(receiver.delay)
                status, text = receiver.answers.pop(0) if receiver.answers else (200, "ok")
                if not verified:
                    status, text = 401, "bad signature"
                self.send_response(status)
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/mam?source=pipeline"

    def __enter__(self):
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
