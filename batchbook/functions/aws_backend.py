"""The AWS backend: AWS Batch and CloudWatch Logs of one region as the Batch endpoint, an S3
store, and polling (AWS has no long-poll) for news.

It submits what the local backend submits, but names each map's run through the job's
``store`` and ``run`` parameters, which the runner's job definition (``batchbook aws
setup``'s) puts in its command: the command carries ids only. Endpoints are boto3's own
choice, ``AWS_ENDPOINT_URL_BATCH`` and friends included (the parity test points them at the
local service and at moto's S3).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from batchbook import interpreter
from batchbook.aws.clients import Aws, is_missing
from batchbook.aws.config import load_profile
from batchbook.aws.image import MANIFEST
from batchbook.aws.resources import scheduler_role_name
from batchbook.errors import ClientError
from batchbook.functions.backend import Backend, mapped_error
from batchbook.functions.objects import ObjectStore, open_store

POLL_ENV = "BATCHBOOK_AWS_POLL_SECONDS"
POLL_SECONDS = 2.0  # between two looks at a running map (a snapshot is a few cheap calls)


class AwsBackend(Backend):
    def __init__(
        self, aws: Aws, store: ObjectStore, queue: str, job_definition: str, setup: str = ""
    ):
        # adaptive retries, as for setup
        super().__init__(aws.batch, aws.logs, store, queue, scheduler=lambda: aws.scheduler)
        self.aws = aws
        self.setup = setup or queue  # the name `batchbook aws setup` made it under
        self.runner = job_definition
        self.needs_execution_role = True  # on AWS, Batch reads secrets with the execution role
        self.region = aws.region
        self.poll_seconds = float(os.environ.get(POLL_ENV) or POLL_SECONDS)
        self._image: dict[str, Any] | None = None

    @classmethod
    def open(
        cls,
        *,
        region: str | None = None,
        queue: str | None = None,
        store: str | None = None,
        profile: str | None = None,
        job_definition: str | None = None,
    ) -> AwsBackend:
        """With ``region``, ``queue`` and ``store`` all given, no config file is needed;
        otherwise the config file's profile (``batchbook aws setup``) fills in the rest."""
        setup = ""
        if not (region and queue and store):
            saved = load_profile()
            setup = saved.setup
            region, queue, store = (
                region or saved.region,
                queue or saved.queue,
                store or saved.store,
            )
            profile = profile or saved.aws_profile or None
            job_definition = job_definition or saved.job_definition
        backend = cls(
            Aws(region, profile),
            open_store(store, profile=profile),
            queue,
            job_definition or f"{queue}-runner",
            setup,
        )
        backend.ensure_queue(None)
        backend.job_definition()
        return backend

    def missing_job_definition(self) -> None:
        raise ClientError(
            f"job definition: {self.runner!r} does not exist in {self.region}; run `batchbook "
            f"aws setup --region {self.region} --bucket B` (it makes the runner's)"
        )

    def runner_command(
        self, store_url: str, run_id: str
    ) -> tuple[list[str] | None, dict[str, str]]:
        return None, {"store": store_url, "run": run_id}

    def scheduler_role(self) -> str:
        from botocore.exceptions import ClientError as BotoClientError

        name = scheduler_role_name(self.setup)
        try:
            return str(self.aws.iam.get_role(RoleName=name)["Role"]["Arn"])
        except BotoClientError as e:
            if not is_missing(e):
                raise mapped_error(e, "GetRole") from e
            raise ClientError(
                f"schedule: the IAM role {name}, with which EventBridge Scheduler submits the "
                f"firings, does not exist; run `batchbook aws setup --region {self.region}` "
                "again (it makes it)"
            ) from None

    def wait_for_change(
        self,
        after: int,
        timeout: float,
        until_final: list[str] | None = None,
        finished: bool = False,
    ) -> int:
        """AWS tells nobody: after a pause, say that something may have changed."""
        time.sleep(max(0.0, min(timeout, self.poll_seconds)))
        return after + 1

    def worker_interpreter(self, modules: list[str]) -> dict[str, Any]:
        """The image's versions, from the manifest ``batchbook aws image`` recorded in the
        store. Without one, the runner installs batchbook at start into python's image of
        this minor version: nothing to compare before, and the worker checks at start."""
        if self._image is None:
            try:
                self._image = json.loads(bytes(self.store.get(MANIFEST)))
            except FileNotFoundError:
                self._image = {}
        if not self._image:
            return interpreter.describe(modules)
        return self._image

    def __repr__(self) -> str:
        return f"<batchbook AWS backend {self.region}, queue {self.queue}, store {self.store.url}>"
