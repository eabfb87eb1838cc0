"""The HTTP service: Batch REST-JSON and CloudWatch Logs on 127.0.0.1, SigV4-signed.

One thread per client connection (HTTP/1.1 keep-alive, as boto3 and the AWS CLI
use it); every operation goes through :class:`LocalBatch`, which serializes them
under its lock and commits them to SQLite before the response is sent.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from batchbook.errors import (
    AuthenticationError,
    BatchbookError,
    ClientError,
    ServerError,
    ThrottlingError,
)
from batchbook.interpreter import describe
from batchbook.runtime.local import LocalBatch
from batchbook.server.auth import check_credential, load_credentials, verify
from batchbook.server.cloudwatch_logs import CloudWatchLogs
from batchbook.server.routes import INTERPRETER_OPERATION, WAIT_OPERATION, route, service_of
from batchbook.version import __version__

MAX_BODY_BYTES = 1 << 20  # far above SubmitJob's 30 KiB; anything bigger is refused unread
IDLE_SECONDS = 10  # a connection that sends nothing for this long is closed
MAX_CONNECTIONS = 8192  # open at once; more are answered 503 (see _Server)
FDS_KEPT = 256  # file descriptors left to the engine (state db, logs, pipes)
_BUSY = b'{"__type": "ServerException", "message": "too many open connections; try again"}'
BUSY_REPLY = (  # written straight to a socket past MAX_CONNECTIONS: AWS's shape, then closed
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"x-amzn-ErrorType: ServerException\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY)
)
PING_PATH = "/batchbook/ping"
Response = tuple[int, dict[str, str], bytes]


class TokenBucket:
    """At most ``rate`` requests a second on average, bursts up to ``rate`` (at least 1); 0: no limit."""

    def __init__(self, rate: float):
        self.rate = rate
        self.burst = max(1.0, rate)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        if not self.rate:
            return True
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class BatchService:
    """Answers HTTP requests for one :class:`LocalBatch`."""

    def __init__(
        self, lb: LocalBatch, host: str = "127.0.0.1", port: int = 0, throttle_rps: float = 0
    ):
        self.lb = lb
        self.credentials = load_credentials(lb.state_dir)
        self.logs = CloudWatchLogs(lb)
        self.throttle = TokenBucket(throttle_rps)
        self.httpd = _Server((host, port), _Handler)
        self.httpd.service = self
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._stop_r, self._stop_w = os.pipe()

    def precheck(self, raw_path: str, headers: dict[str, str]) -> Response | None:
        """The 403 for a request whose headers already show it is not signed with our key
        (then its body is never read), else None."""
        if raw_path == PING_PATH:
            return None
        service = service_of(raw_path, headers)
        try:
            check_credential(self.credentials, headers, service)
        except AuthenticationError as e:
            return _error(service, e)
        return None

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        if raw_path == PING_PATH:
            return self._ping()
        service = service_of(raw_path, headers)
        try:
            region = verify(self.credentials, method, raw_path, headers, body, service)
            if not self.throttle.take():
                raise ThrottlingError("Too Many Requests")
            r = route(method, raw_path, headers, body)
            if r.service == "logs":
                payload = json.dumps(self.logs.call(r.operation, r.request, region)).encode()
            elif r.operation == WAIT_OPERATION:
                payload = self._wait(r.request)
            elif r.operation == INTERPRETER_OPERATION:
                payload = self._interpreter(r.request)
            else:
                payload = self.lb.call_json(r.operation, r.request, region)
            return 200, {"Content-Type": _content_type(service)}, payload
        except BatchbookError as e:
            return _error(service, e)
        except Exception as e:  # a real fault: say so as a 500, log the traceback
            traceback.print_exc(file=sys.stderr)
            return _error(service, ServerError(f"internal error: {type(e).__name__}: {e}"))

    def _wait(self, request: dict[str, Any]) -> bytes:
        after, timeout = request.get("after", 0), request.get("timeout", 10)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ClientError(f"after: {after!r:.40} is not a whole number >= 0")
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 <= timeout <= 20
        ):
            raise ClientError(f"timeout: {timeout!r:.40} is out of range; allowed 0 to 20 seconds")
        jobs = request.get("untilFinal", [])
        if (
            not isinstance(jobs, list)
            or not all(isinstance(j, str) for j in jobs)
            or len(jobs) > 1000
        ):
            raise ClientError("untilFinal: a list of at most 1000 job ids")
        finished = request.get("finished", False)
        if not isinstance(finished, bool):
            raise ClientError(f"finished: {finished!r:.40} is not true or false")
        version = self.lb.wait_for_change(after, timeout, jobs, finished)
        return json.dumps({"version": version}).encode()

    def _interpreter(self, request: dict[str, Any]) -> bytes:
        modules = request.get("modules", [])
        if (
            not isinstance(modules, list)
            or len(modules) > 1000
            or not all(isinstance(m, str) and m.isidentifier() for m in modules)
        ):
            raise ClientError("modules: a list of at most 1000 top-level module names")
        return json.dumps(describe(modules)).encode()

    def _ping(self) -> Response:
        body = {
            "service": "batchbook",
            "version": __version__,
            "pid": os.getpid(),
            "stateDir": str(self.lb.state_dir),
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`; waits on the sockets, never polls."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.httpd, selectors.EVENT_READ, "accept")
            sel.register(self._stop_r, selectors.EVENT_READ, "stop")
            while True:
                for key, _ in sel.select():
                    if key.data == "stop":
                        self.httpd.server_close()
                        return
                    self.httpd.handle_request()  # readable: accepts at once, a thread serves it

    def shutdown(self) -> None:
        """Make :meth:`serve_forever` return; safe from a signal handler or another thread."""
        os.write(self._stop_w, b"x")


def _content_type(service: str) -> str:
    return "application/x-amz-json-1.1" if service == "logs" else "application/json"


def _error(service: str, error: BatchbookError) -> Response:
    aws_type = getattr(error, "aws_type", "ClientException")
    status = error.http_status or 400
    if service == "logs" and status == 429:
        status, aws_type = 400, "ThrottlingException"  # CloudWatch's own name for it
    body = json.dumps({"__type": aws_type, "message": str(error)}).encode()
    headers = {"Content-Type": _content_type(service), "x-amzn-ErrorType": aws_type}
    return status, headers, body


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most MAX_CONNECTIONS of them: a connection past that is
    answered 503 at once and closed, so stalled clients can pin neither every thread nor
    every file descriptor (each stalled one is dropped after IDLE_SECONDS anyway)."""

    daemon_threads = True
    request_queue_size = 256
    service: BatchService

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(_connection_bound())

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(BUSY_REPLY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _connection_bound() -> int:
    """MAX_CONNECTIONS, within the file descriptors this process may open (its soft limit
    raised to the hard one first), leaving room for the engine's own files and pipes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    room = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else soft - FDS_KEPT
    return max(16, min(MAX_CONNECTIONS, room))


class _Handler(BaseHTTPRequestHandler):
    timeout = IDLE_SECONDS  # a request's headers and body, and a kept-alive connection's next one
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"  # even a garbled request line gets a status line back
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart
    server: _Server

    def _serve(self) -> None:
        length_header = self.headers.get("Content-Length", "0")
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._reply(
                _error(
                    "batch",
                    ClientError(f"Content-Length: {length_header!r:.40} is not a byte count"),
                )
            )
            return
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # not read, so the connection cannot be reused
            self._reply(
                _error(
                    "batch",
                    ClientError(
                        f"request body: {length} bytes; at most {MAX_BODY_BYTES} are accepted"
                    ),
                )
            )
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        refused = self.server.service.precheck(self.path, headers) if length else None
        if refused is not None:
            self.close_connection = True  # its body is not read: the connection cannot be reused
            self._reply(refused)
            return
        body = self.rfile.read(length)
        self._reply(self.server.service.handle(self.command, self.path, headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests http.server cannot parse (bad request line, huge headers) answered in AWS's shape."""
        self.close_connection = True
        status, headers, payload = _error(
            "batch", ClientError(f"malformed HTTP request: {message or code}")
        )
        self._reply((code if 400 <= code < 500 else status, headers, payload))

    def _reply(self, response: Response) -> None:
        status, headers, payload = response
        self.send_response(status)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the service log


def run_service(
    state_dir: Path,
    port: int = 0,
    throttle_rps: float = 0,
    ready_fd: int | None = None,
    **engine_options: Any,
) -> int:
    """``batchbook serve``: run until SIGTERM/SIGINT; the discovery file says where."""
    from batchbook.server.discovery import last_port, remove_info, write_info

    with LocalBatch(state_dir, **engine_options) as lb:
        # Port 0: the port of last time if it is free, so the profiles users copied stay right.
        remembered = last_port(lb.state_dir) if port == 0 else 0
        try:
            service = BatchService(lb, port=remembered or port, throttle_rps=throttle_rps)
        except OSError:
            if not remembered:
                raise
            service = BatchService(lb, port=0, throttle_rps=throttle_rps)  # it was taken

        def stop(signum: int, frame: Any) -> None:
            service.shutdown()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        write_info(lb.state_dir, service.url, service.port)
        print(f"batchbook service {service.url} (pid {os.getpid()}) on {lb.state_dir}", flush=True)
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        try:
            service.serve_forever()
        finally:
            remove_info(lb.state_dir)
    print("batchbook service stopped", flush=True)
    return 0
