"""A stand-in for AWS, so that aws.ipynb runs anywhere, for free: moto's server plays IAM,
EC2, STS and S3, and a batchbook service of its own plays AWS Batch and CloudWatch Logs
(it runs the jobs on this machine). The environment points boto3, the `batchbook` command
and the workers there. With BATCHBOOK_AWS_LIVE=1 the notebook skips this and uses AWS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from batchbook.server.discovery import ensure_service, stop_service

MOTO = """
import sys
from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@dataclass
class Rehearsal:
    moto: subprocess.Popen[str]
    state_dir: str
    moto_url: str
    batch_url: str

    def stop(self) -> None:
        stop_service(self.state_dir)
        if self.moto.stdin:
            self.moto.stdin.close()
        self.moto.wait(timeout=30)

    def __repr__(self) -> str:
        return (
            f"Rehearsal: IAM, EC2, STS and S3 on moto's server at {self.moto_url}; "
            f"Batch and CloudWatch Logs on batchbook's service at {self.batch_url}"
        )


def start(region: str = "us-east-1") -> Rehearsal:
    moto = subprocess.Popen(
        [sys.executable, "-c", MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # its request log, which would land in the notebook
        text=True,
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
    )
    assert moto.stdout is not None
    moto_url = f"http://127.0.0.1:{int(moto.stdout.readline())}"
    state_dir = tempfile.mkdtemp(prefix="batchbook-rehearsal-")
    # its own batchbook home: the set-up's profile goes there, never over your real one
    os.environ["BATCHBOOK_HOME"] = os.path.join(state_dir, "home")
    # the workers run `python` (as on AWS, from the job definition's command): this one
    os.environ["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    os.environ.update(AWS_ENDPOINT_URL=moto_url, AWS_ENDPOINT_URL_S3=moto_url)
    os.environ["AWS_DEFAULT_REGION"] = region
    # the workers' credentials, as a job role gives them on AWS: moto takes any key
    os.environ.update(AWS_ACCESS_KEY_ID="rehearsal", AWS_SECRET_ACCESS_KEY="rehearsal")
    service = ensure_service(state_dir)  # started now, its workers see moto as S3
    os.environ.update(
        AWS_ENDPOINT_URL_BATCH=service.url,
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=service.url,
        AWS_ACCESS_KEY_ID=service.credentials.access_key,  # the service's own; moto takes it too
        AWS_SECRET_ACCESS_KEY=service.credentials.secret_key,
    )
    return Rehearsal(moto, state_dir, moto_url, service.url)
