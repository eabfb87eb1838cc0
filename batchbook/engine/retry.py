"""Retry strategy: attempts and the first-match ``evaluateOnExit`` rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from batchbook.errors import ClientError
from batchbook.vocabulary import MAX_ATTEMPTS, check_range

_REASON_PATTERN = re.compile(r"^[A-Za-z0-9.:\s]*\*?$")
_EXIT_CODE_PATTERN = re.compile(r"^[0-9]*\*?$")


@dataclass(frozen=True)
class RetryRule:
    action: str  # "RETRY" or "EXIT"
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None

    def matches(self, status_reason: str | None, reason: str | None, exit_code: int | None) -> bool:
        code = None if exit_code is None else str(exit_code)
        return (
            _glob(self.on_status_reason, status_reason)
            and _glob(self.on_reason, reason)
            and _glob(self.on_exit_code, code)
        )


@dataclass(frozen=True)
class RetryStrategy:
    attempts: int = 1
    rules: tuple[RetryRule, ...] = ()

    @classmethod
    def from_api(cls, value: dict[str, Any] | None, field: str = "retryStrategy") -> RetryStrategy:
        if not value:
            return cls()
        attempts = value.get("attempts", 1)
        check_range(f"{field}.attempts", attempts, 1, MAX_ATTEMPTS)
        rules = value.get("evaluateOnExit") or []
        if len(rules) > 5:
            raise ClientError(f"{field}.evaluateOnExit: {len(rules)} rules; at most 5 are allowed")
        parsed = []
        for i, rule in enumerate(rules):
            where = f"{field}.evaluateOnExit[{i}]"
            action = str(rule.get("action", "")).upper()
            if action not in ("RETRY", "EXIT"):
                raise ClientError(
                    f"{where}.action: {rule.get('action')!r} is not one of RETRY, EXIT"
                )
            for key, pattern in (
                ("onStatusReason", _REASON_PATTERN),
                ("onReason", _REASON_PATTERN),
            ):
                _check_pattern(
                    f"{where}.{key}", rule.get(key), pattern, "letters, digits, '.', ':' and spaces"
                )
            _check_pattern(
                f"{where}.onExitCode", rule.get("onExitCode"), _EXIT_CODE_PATTERN, "digits"
            )
            parsed.append(
                RetryRule(
                    action, rule.get("onStatusReason"), rule.get("onReason"), rule.get("onExitCode")
                )
            )
        return cls(attempts, tuple(parsed))

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attempts": self.attempts}
        if self.rules:
            out["evaluateOnExit"] = [
                {
                    k: v
                    for k, v in (
                        ("onStatusReason", r.on_status_reason),
                        ("onReason", r.on_reason),
                        ("onExitCode", r.on_exit_code),
                        ("action", r.action),
                    )
                    if v is not None
                }
                for r in self.rules
            ]
        return out

    def should_retry(
        self,
        attempts_made: int,
        status_reason: str | None,
        reason: str | None,
        exit_code: int | None,
    ) -> bool:
        """True when another attempt is due after a failed attempt number ``attempts_made``."""
        if attempts_made >= self.attempts:
            return False
        for rule in self.rules:
            if rule.matches(status_reason, reason, exit_code):
                return rule.action == "RETRY"
        return True


def _check_pattern(field: str, value: str | None, pattern: re.Pattern[str], allowed: str) -> None:
    if value is None:
        return
    if len(value) > 512 or not pattern.match(value):
        raise ClientError(
            f"{field}: {value!r:.80} is not valid; up to 512 {allowed}, with an optional '*' at the end only"
        )


def _glob(pattern: str | None, value: str | None) -> bool:
    """AWS's evaluateOnExit glob: exact match, or prefix match when the pattern ends in '*'."""
    if pattern is None:
        return True
    value = value or ""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern
