"""The pod-restart token bucket and the API wrapper's retry loop (pure parts)."""

from __future__ import annotations

import pytest

from actuator.kubernetes_api import ApiError, RetryPolicy, with_retries
from actuator.ratelimit import TokenBucket


def test_a_fresh_bucket_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(burst=2, per_hour=3600)  # one token a second
    ok1, bucket = bucket.take(0.0)
    ok2, bucket = bucket.take(0.0)
    ok3, bucket = bucket.take(0.5)
    assert (ok1, ok2, ok3) == (True, True, False)
    assert bucket.seconds_until(0.5) == pytest.approx(0.5)
    ok4, bucket = bucket.take(1.0)
    assert ok4
    assert bucket.available(100.0) == 2.0  # never more than the burst


def test_asking_does_not_spend():
    bucket = TokenBucket(burst=1, per_hour=0)
    allowed, _ = bucket.take(0.0)
    assert allowed and bucket.available(0.0) == 1.0
    _, spent = bucket.take(0.0)
    assert spent.take(10.0)[0] is False
    assert spent.seconds_until(10.0) is None  # rate zero: never


def test_negative_settings_are_rejected():
    with pytest.raises(ValueError):
        TokenBucket(burst=-1)


class Flaky:
    def __init__(self, *errors: ApiError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def error(status: int, reason: str = "", retry_after: float | None = None) -> ApiError:
    return ApiError("patch deployment x", status, reason, "", retry_after)


@pytest.mark.parametrize("failure", [
    error(409, "Conflict"), error(429, "TooManyRequests"), error(500), error(502), error(503),
    error(504), error(0, "ReadTimeoutError"),
])
def test_transient_errors_are_retried_with_backoff(failure):
    sleeps: list[float] = []
    call = Flaky(failure, failure)
    assert with_retries("op", call, RetryPolicy(base_delay_s=0.5), sleeps.append) == "ok"
    assert call.calls == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize("failure", [error(404, "NotFound"), error(409, "AlreadyExists"),
                                     error(422, "Invalid"), error(403, "Forbidden")])
def test_permanent_errors_are_not_retried(failure):
    call = Flaky(failure)
    with pytest.raises(ApiError):
        with_retries("op", call, RetryPolicy(), lambda s: None)
    assert call.calls == 1


def test_the_last_error_is_raised_after_the_last_attempt():
    sleeps: list[float] = []
    call = Flaky(*[error(503)] * 10)
    with pytest.raises(ApiError, match="HTTP 503"):
        with_retries("op", call, RetryPolicy(attempts=4, base_delay_s=1, max_delay_s=3),
                     sleeps.append)
    assert call.calls == 4 and sleeps == [1, 2, 3]


def test_retry_after_is_honoured_up_to_the_cap():
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=5)
    assert policy.delay(0, retry_after_s=2) == 2
    assert policy.delay(0, retry_after_s=60) == 5
