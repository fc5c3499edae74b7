"""The operator's own /healthz and /readyz, served from a thread for the life of the process, so
they answer while kopf is not running (the App CRD is missing) as well as while it is.

/healthz: the process is alive: 200, unless its event loop has stopped answering (no heartbeat for
STALL seconds while kopf runs: 503, so the kubelet restarts it); liveness must not restart an
operator that is only waiting for its CRD. /readyz: 200 once kopf is serving Apps; 503 with the
reason otherwise."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STALL = 30.0  # seconds without a heartbeat from the event loop before /healthz fails

class Health:
    """What the endpoints report; set by the main thread, read by the server's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: str | None = "starting"
        self.serving = threading.Event()  # kopf's ready flag for the current run
        self.details: Callable[[], dict[str, Any]] = dict
        self.heartbeat: float | None = None  # monotonic time of the event loop's last beat; None: no loop
        self.problem: Callable[[], str | None] = lambda: None  # not ready for this reason (guard.py)
        self.clock: Callable[[], float] = time.monotonic

    def beat(self) -> None:
        self.heartbeat = self.clock()

    def stalled(self) -> float | None:
        """Seconds since the event loop's last beat, when that is over STALL; else None."""
        beat = self.heartbeat
        since = None if beat is None else self.clock() - beat
        return since if since is not None and since > STALL else None

    def waiting(self, why: str) -> None:
        with self._lock:
            self._waiting = why
            self.serving = threading.Event()
            self.heartbeat = None

    def running(self) -> threading.Event:
        """A new kopf run starts: it sets the returned flag once it is ready."""
        with self._lock:
            self._waiting = None
            self.serving = threading.Event()
            return self.serving

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            if self._waiting is not None:
                return False, self._waiting
            if not self.serving.is_set():
                return False, "starting the watches"
        problem = self.problem()
        return (False, problem) if problem else (True, "serving Apps")


def answer(health: Health, path: str) -> tuple[int, dict[str, Any]]:
    ready, why = health.readiness()
    if path == "/healthz":
        stalled = health.stalled()
        if stalled is not None:
            return 503, {"alive": False, "state": f"the event loop has not answered for {stalled:.0f}s"}
        return 200, {"alive": True, "ready": ready, "state": why, **health.details()}
    if path == "/readyz":
        return (200 if ready else 503), {"ready": ready, "state": why}
    return 404, {"error": f"no such endpoint {path}; use /healthz or /readyz"}


def serve(health: Health, address: str, port: int, poll: float = 0.5) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answer(health, self.path.split("?", 1)[0])
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per probe would drown the log

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(poll,), name="health", daemon=True).start()
    return server
