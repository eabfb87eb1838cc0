"""The local access key and AWS Signature Version 4 checks of every request.

The key lives in ``<state dir>/credentials.json`` (mode 0600), made on first use;
only processes of the user who can read that file can drive the service.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote

from batchbook.errors import AuthenticationError, UnsafeStateDir
from batchbook.home import private_dir

MAX_CLOCK_SKEW_SECONDS = 15 * 60  # AWS's own window
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$"
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)  # never in a repr, a log or a notebook's output


def load_credentials(state_dir: Path) -> Credentials:
    """The state dir's access key, made (readable by this user only) if there is none yet."""
    path = state_dir / "credentials.json"
    if not path.exists():
        private_dir(state_dir)
        data = {
            "aws_access_key_id": "BBLOCAL" + secrets.token_hex(7).upper(),
            "aws_secret_access_key": secrets.token_urlsafe(30),
        }
        tmp = state_dir / f".credentials.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        try:
            os.link(tmp, path)  # atomic create-if-absent: two first users agree on one key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    st = os.lstat(path)
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or not stat.S_ISREG(st.st_mode):
        raise UnsafeStateDir(
            f"{path}: must be a file of yours that nobody else can read or write "
            f"(mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}); remove it and a new key is made"
        )
    data = json.loads(path.read_text())
    return Credentials(data["aws_access_key_id"], data["aws_secret_access_key"])


def check_credential(creds: Credentials, headers: dict[str, str], service: str) -> tuple[str, ...]:
    """What a request's headers alone show of its signature: an AWS4-HMAC-SHA256 one, by
    this service's key, for ``service``, signed within 15 minutes. Checked before the body
    is read: nobody without the key makes the service read a body. Returns (day, region,
    signed headers, signature, x-amz-date)."""
    auth = headers.get("authorization")
    if not auth:
        raise AuthenticationError(
            "Missing Authentication Token", "MissingAuthenticationTokenException"
        )
    m = _AUTH_RE.match(auth)
    if m is None:
        raise AuthenticationError(
            "Authorization header is not an AWS4-HMAC-SHA256 signature",
            "IncompleteSignatureException",
        )
    key_id, day, region, signed_service, signed_headers, signature = m.groups()
    if not hmac.compare_digest(key_id, creds.access_key):
        raise AuthenticationError("The security token included in the request is invalid.")
    if signed_service != service:
        raise AuthenticationError(
            f"Credential should be scoped to correct service: '{service}'.",
            "InvalidSignatureException",
        )
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise AuthenticationError(
            "X-Amz-Date header is missing or not in the form YYYYMMDDTHHMMSSZ",
            "IncompleteSignatureException",
        ) from None
    if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_SECONDS or not stamp.startswith(day):
        raise AuthenticationError(
            f"Signature expired or not yet valid: {stamp} is more than 15 minutes from now",
            "InvalidSignatureException",
        )
    return day, region, signed_headers, signature, stamp


def verify(
    creds: Credentials,
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    service: str,
) -> str:
    """Check the request's SigV4 signature; return the region it was signed for.

    ``raw_path`` is the request target as sent (still percent-encoded, with the
    query string); ``headers`` are keyed in lower case.
    """
    day, region, signed_headers, signature, stamp = check_credential(creds, headers, service)
    names = signed_headers.split(";")
    if "host" not in names:
        raise AuthenticationError("'Host' must be a signed header", "InvalidSignatureException")
    body_hash = hashlib.sha256(body).hexdigest()  # of the body as it came, never as claimed
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and not hmac.compare_digest(claimed, body_hash):
        raise AuthenticationError(
            "The request body does not match its X-Amz-Content-SHA256 (or is unsigned); "
            "sign the body itself",
            "InvalidSignatureException",
        )
    path, _, query = raw_path.partition("?")
    canonical = "\n".join(
        [
            method,
            quote(_remove_dot_segments(path), safe="/~"),
            _canonical_query(query),
            "".join(f"{n}:{' '.join(headers.get(n, '').split())}\n" for n in names),
            signed_headers,
            body_hash,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + creds.secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise AuthenticationError(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
            "InvalidSignatureException",
        )
    return region


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    out: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part != ".":
            out.append(part)
    joined = "/".join(out)
    return joined if joined.startswith("/") else "/" + joined
