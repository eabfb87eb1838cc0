"""Finding, starting and stopping the one local service of a state dir.

The running service writes ``<state dir>/service.json`` (url, port, pid). A client
calls :func:`ensure_service`: under a lock on ``service.lock`` it checks that the
file names a live service that answers, and otherwise starts one, detached from
the caller (so it outlives a notebook kernel), waiting on a pipe for it to be
ready. A file left behind by a crashed service is noticed and replaced.
"""

from __future__ import annotations

import dataclasses
import fcntl
import http.client
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchbook.errors import ClientError, ResourceNotFound, ServiceUnavailable
from batchbook.home import check_private, default_state_dir, private_dir, private_opener
from batchbook.server.auth import Credentials, load_credentials
from batchbook.server.routes import FIRINGS_PATH, INTERPRETER_PATH, WAIT_PATH

INFO_FILE = "service.json"
PORT_FILE = "service.port"  # the last service's port: the next one takes it again if it is free
START_TIMEOUT_SECONDS = 60.0
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Service:
    """Where a running local service is, and the key to talk to it."""

    url: str
    pid: int
    state_dir: Path
    credentials: Credentials
    region: str = DEFAULT_REGION

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("batch", "logs" or "scheduler", **kwargs)``."""
        return {
            "endpoint_url": self.url,
            "region_name": self.region,
            "aws_access_key_id": self.credentials.access_key,
            "aws_secret_access_key": self.credentials.secret_key,
        }

    def in_region(self, region: str) -> Service:
        """The same service, its ARNs and signatures for ``region``."""
        return dataclasses.replace(self, region=region)

    def client(self, service_name: str = "batch", region: str | None = None, **config: Any) -> Any:
        """A boto3 client for ``batch``, ``logs`` or ``scheduler`` on this service (``config``:
        botocore Config)."""
        import boto3
        from botocore.config import Config

        cfg = Config(**{"retries": {"mode": "adaptive", "max_attempts": 10}, **config})
        kwargs = self.client_kwargs()
        kwargs["region_name"] = region or self.region
        return boto3.client(service_name, config=cfg, **kwargs)

    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        """Long-poll the service for its next state change after version ``after``.

        batchbook's own extension of the API (``POST /batchbook/wait``), signed like
        every request; returns the new version, or the same one after ``timeout``.
        With ``until_final``, only a change that leaves one of those jobs final counts;
        with ``finished``, ``after`` counts the commits in which any job became final.
        """
        request = {
            "after": after,
            "timeout": min(timeout, 20),
            "untilFinal": until_final or [],
            "finished": finished,
        }
        return int(self._call(WAIT_PATH, request, timeout + 10)["version"])

    def interpreter(self, modules: list[str]) -> dict[str, Any]:
        """What the service's workers run: Python and the versions of ``modules``
        (``POST /batchbook/interpreter``; workers run the service's interpreter)."""
        return self._call(INTERPRETER_PATH, {"modules": modules}, 30)

    def schedule_firings(
        self, name: str, group: str, catch_up: bool | None = None
    ) -> dict[str, Any]:
        """What a local schedule fired and missed, and when it fires next (``POST
        /batchbook/schedule-firings``); with ``catch_up``, its catch-up setting is changed."""
        request: dict[str, Any] = {"Name": name, "GroupName": group}
        if catch_up is not None:
            request["CatchUp"] = catch_up
        return self._call(FIRINGS_PATH, request, 30)

    def _call(self, path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """POST one of batchbook's own extensions, signed like every request, on a kept-alive
        connection of this thread's."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials as BotoCredentials

        body = json.dumps(request).encode()
        signed = AWSRequest("POST", self.url + path, data=body)
        signed.headers["Content-Type"] = "application/json"
        creds = BotoCredentials(self.credentials.access_key, self.credentials.secret_key)
        SigV4Auth(creds, "batch", self.region).add_auth(signed)
        headers = dict(signed.headers.items())
        for retry in (True, False):  # a kept-alive connection may have been closed meanwhile
            conn = _connection(self.url)
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(conn.timeout)
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = json.loads(resp.read())
                break
            except (OSError, ValueError, http.client.HTTPException) as e:
                conn.close()
                _local.connections.pop(self.url, None)
                if not retry:
                    raise ServiceUnavailable(
                        f"the local service at {self.url} does not answer: {e}"
                    ) from e
        if resp.status == 404:  # a schedule this service does not have
            raise ResourceNotFound(str(data.get("message")))
        if 400 <= resp.status < 500 and resp.status not in (403, 429):
            raise ClientError(str(data.get("message")))
        if resp.status != 200:
            raise ServiceUnavailable(f"{path}: {resp.status} {data.get('message')}")
        return dict(data)

    def environment(self) -> dict[str, str]:
        """Environment variables that point the AWS CLI and boto3 at this service."""
        return {
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_BATCH": self.url,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self.url,
            "AWS_ENDPOINT_URL_SCHEDULER": self.url,
        }

    def profile(self, name: str = "batchbook-local") -> str:
        """An ``~/.aws/config``-style profile for this service."""
        return "\n".join(
            [
                f"[profile {name}]",
                f"region = {self.region}",
                f"aws_access_key_id = {self.credentials.access_key}",
                f"aws_secret_access_key = {self.credentials.secret_key}",
                "services = batchbook-local",
                "",
                "[services batchbook-local]",
                "batch =",
                f"  endpoint_url = {self.url}",
                "cloudwatch_logs =",
                f"  endpoint_url = {self.url}",
                "scheduler =",
                f"  endpoint_url = {self.url}",
            ]
        )


_local = threading.local()  # per thread: url -> kept-alive connection for long-polls


def _connection(url: str) -> http.client.HTTPConnection:
    connections = _local.__dict__.setdefault("connections", {})
    conn = connections.get(url)
    if conn is None:
        host, _, port = url.removeprefix("http://").partition(":")
        conn = connections[url] = http.client.HTTPConnection(host, int(port))
    return conn


def resolve_state_dir(state_dir: str | os.PathLike[str] | None) -> Path:
    return Path(state_dir or default_state_dir()).expanduser().resolve()


def write_info(state_dir: Path, url: str, port: int) -> None:
    info = {"url": url, "port": port, "pid": os.getpid(), "startedAt": int(time.time() * 1000)}
    tmp = state_dir / f".{INFO_FILE}.{os.getpid()}"
    with open(tmp, "w", opener=private_opener) as f:
        f.write(json.dumps(info))
    tmp.replace(state_dir / INFO_FILE)
    with open(state_dir / PORT_FILE, "w", opener=private_opener) as f:
        f.write(f"{port}\n")


def last_port(state_dir: Path) -> int:
    """The port the state dir's last service had (0: none yet)."""
    try:
        return int((state_dir / PORT_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return 0


def remove_info(state_dir: Path) -> None:
    """Remove the discovery file if it is this process's own."""
    path = state_dir / INFO_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass


def find_service(state_dir: str | os.PathLike[str] | None = None) -> Service | None:
    """The live service of ``state_dir``, or None (a stale discovery file counts as none)."""
    state_dir = resolve_state_dir(state_dir)
    if state_dir.exists():
        check_private(state_dir)  # never talk to (or sign for) a service someone else planted
    try:
        info = json.loads((state_dir / INFO_FILE).read_text())
        url, pid = info["url"], int(info["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if not _answers(url, pid, state_dir):
        return None
    return Service(url, pid, state_dir, load_credentials(state_dir))


def ensure_service(
    state_dir: str | os.PathLike[str] | None = None, *, serve_args: list[str] | None = None
) -> Service:
    """The state dir's running service, started (detached) if there is none."""
    state_dir = resolve_state_dir(state_dir)
    private_dir(state_dir)  # 0700, this user's: refused otherwise
    load_credentials(state_dir)  # made now if new; a key file others can read is refused here
    service = find_service(state_dir)
    if service is not None:
        return service
    with _locked(state_dir / "service.lock"):
        service = find_service(state_dir)  # another client may have started it meanwhile
        if service is None:
            (state_dir / INFO_FILE).unlink(missing_ok=True)  # stale: its service is gone
            _start(state_dir, serve_args or [])
            service = find_service(state_dir)
        if service is None:
            raise ServiceUnavailable(
                f"the service started but does not answer; see {state_dir / 'service.log'}"
            )
        return service


def stop_service(state_dir: str | Path | None = None, timeout: float = 30.0) -> bool:
    """Stop the state dir's service (running jobs are stopped too); False if none was running."""
    import psutil

    service = find_service(state_dir)
    if service is None:
        return False
    try:
        proc = psutil.Process(service.pid)
        proc.terminate()
        try:
            proc.wait(timeout)
        except (
            psutil.TimeoutExpired
        ):  # stuck: kill it; running attempts are retried on the next start
            proc.kill()
            proc.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    return True


def _start(state_dir: Path, serve_args: list[str]) -> None:
    read_fd, write_fd = os.pipe()
    log = open(state_dir / "service.log", "ab", opener=private_opener)  # noqa: SIM115 - the child's
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchbook",
                "serve",
                "--state-dir",
                str(state_dir),
                "--ready-fd",
                str(write_fd),
                *serve_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # outlives the kernel that started it
            close_fds=True,
        )
        proc.wait()  # `serve --ready-fd` forks the service off and exits: it is not our child
    finally:
        os.close(write_fd)
        log.close()
    try:
        ready, _, _ = select.select([read_fd], [], [], START_TIMEOUT_SECONDS)
        message = os.read(read_fd, 64) if ready else b""
    finally:
        os.close(read_fd)
    if message.startswith(b"ready"):
        return
    tail = (state_dir / "service.log").read_text(errors="replace")[-2000:]
    raise ServiceUnavailable(f"the local service did not start; its log ends:\n{tail}")


def _answers(url: str, pid: int, state_dir: Path) -> bool:
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/batchbook/ping")
        resp = conn.getresponse()
        info = json.loads(resp.read()) if resp.status == 200 else {}
    except (OSError, ValueError):
        return False
    finally:
        conn.close()
    return info.get("pid") == pid and info.get("stateDir") == str(state_dir)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a", opener=private_opener) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
