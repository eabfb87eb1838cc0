"""The Batch operations on compute environments, job queues, job definitions and tags, as
the Engine answers them (the registry holds the objects; jobs carry their own tags)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from batchbook.engine.jobs import JobState
from batchbook.engine.registry import Registry, check_tags
from batchbook.engine.tags import resource_tags
from batchbook.errors import ClientError
from batchbook.validation import validate_request
from batchbook.vocabulary import MAX_TAGS, check_range


class ObjectOperations:
    """Engine's base: the operations that are not about running jobs."""

    registry: Registry
    jobs: dict[str, JobState]
    min_timeout_seconds: int

    def _terminate(self, job: JobState, reason: str) -> None:
        raise NotImplementedError

    def _touch(self, job: JobState) -> None:
        raise NotImplementedError

    # ------------------------------------------------------ registry operations
    def create_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.create_compute_environment(req)

    def update_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.update_compute_environment(req)

    def delete_compute_environment(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.delete_compute_environment(req)

    def describe_compute_environments(self, req: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.registry.describe_compute_environments(req or {})

    def create_job_queue(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.create_job_queue(req)

    def update_job_queue(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.update_job_queue(req)

    def delete_job_queue(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("DeleteJobQueue", req)
        queue = self.registry.job_queue(req["jobQueue"])
        name = queue["jobQueueName"]
        if queue["state"] != "DISABLED":
            raise ClientError(f"jobQueue: {name!r} must be DISABLED before it is deleted")
        for job in list(self.jobs.values()):
            if job.spec.queue == name and job.parent is None and not job.final:
                self._terminate(job, "Job queue deleted")
        self.registry.delete_job_queue(name)
        return {}

    def describe_job_queues(self, req: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.registry.describe_job_queues(req or {})

    def register_job_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.register_job_definition(req, self.min_timeout_seconds)

    def deregister_job_definition(self, req: dict[str, Any]) -> dict[str, Any]:
        return self.registry.deregister_job_definition(req)

    def describe_job_definitions(self, req: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.registry.describe_job_definitions(req or {})

    # ------------------------------------------------------------------- tags
    def tag_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("TagResource", req)
        check_tags(req["tags"], "tags")
        self._retag(req["resourceArn"], lambda tags: {**tags, **req["tags"]})
        return {}

    def untag_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("UntagResource", req)
        check_range("tagKeys", len(req["tagKeys"]), 1, MAX_TAGS)
        drop = set(req["tagKeys"])
        self._retag(
            req["resourceArn"], lambda tags: {k: v for k, v in tags.items() if k not in drop}
        )
        return {}

    def list_tags_for_resource(self, req: dict[str, Any]) -> dict[str, Any]:
        validate_request("ListTagsForResource", req)
        return {"tags": self._retag(req["resourceArn"], None)}

    def _retag(
        self, arn: str, change: Callable[[dict[str, str]], dict[str, str]] | None
    ) -> dict[str, str]:
        tags, job = resource_tags(arn, change, self.registry, self.jobs)
        if job is not None and change is not None:
            self._touch(job)
        return tags
