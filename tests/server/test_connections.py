"""Stalled connections cannot take the service down: 2,000 of them open, a signed request
still answers within a one-second client timeout; a connection that sends nothing is
closed by the service after its idle timeout."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchbook.server.discovery import Service, stop_service
from batchbook.server.service import IDLE_SECONDS
from tests.server.conftest import start


@pytest.fixture
def low_limit_service(tmp_path: Path) -> Iterator[Service]:
    """A service started with a soft limit of 1,024 open files (it raises its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        pytest.skip(f"this machine allows {hard} open files; the test needs 2,200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        svc = start(tmp_path / "state")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft < 2200:  # and this process needs room for its own 2,000 sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    yield svc
    stop_service(svc.state_dir)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_two_thousand_stalled_connections_leave_the_service_answering(
    low_limit_service: Service,
) -> None:
    service = low_limit_service
    host, port = "127.0.0.1", int(service.url.rsplit(":", 1)[1])
    stalled = []
    try:
        for _ in range(2000):  # connected, and never a byte: each pins a thread until dropped
            s = socket.create_connection((host, port), timeout=5)
            stalled.append(s)
        stalled[0].sendall(b"POST /v1/describejobqueues HTTP/1.1\r\nHost: x\r\n")  # half a request
        quick: Any = service.client(
            "batch",
            connect_timeout=1,
            read_timeout=1,
            retries={"max_attempts": 1, "mode": "standard"},
        )
        assert "jobQueues" in quick.describe_job_queues()  # within a second, or it raises
    finally:
        for s in stalled:
            s.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    service: Service,
) -> None:
    with socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1]))) as s:
        s.settimeout(IDLE_SECONDS + 20)  # a bound on the test, not the thing measured
        assert s.recv(1) == b""  # the service closed it


def test_a_body_is_not_read_unless_the_headers_carry_our_key(service: Service) -> None:
    """An unsigned (or wrongly keyed) request is answered 403 from its headers alone: the
    service does not wait for, or hold, a body nobody with the key sent."""
    for authorization in (
        "",
        "AWS4-HMAC-SHA256 Credential=AKIDNOTOURS/20261201/us-east-1/batch/aws4_request, SignedHeaders=host, Signature=00",
    ):
        with socket.create_connection(("127.0.0.1", int(service.url.rsplit(":", 1)[1]))) as s:
            s.settimeout(IDLE_SECONDS / 2)  # well before the service would give up on the body
            head = (
                "POST /v1/describejobqueues HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {1 << 20}\r\n"
                + (f"Authorization: {authorization}\r\n" if authorization else "")
                + "\r\n"
            )
            s.sendall(head.encode())  # and never the body
            reply = s.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 403"), reply
        assert "x-amzn-ErrorType:" in reply
