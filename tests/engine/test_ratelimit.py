from __future__ import annotations

import itertools

import pytest

from kaito.engine import (
    BucketRateLimiter,
    ExponentialFailureRateLimiter,
    FakeClock,
    MaxOfRateLimiter,
    default_rate_limiter,
)


def test_exponential_backoff_doubles_from_5ms_and_caps_at_1000s() -> None:
    limiter = ExponentialFailureRateLimiter()
    delays = [limiter.when("k") for _ in range(20)]
    assert delays[:5] == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert delays[-1] == 1000.0
    assert max(delays) == 1000.0
    assert limiter.retries("k") == 20


def test_exponential_backoff_is_per_key_and_reset_by_forget() -> None:
    limiter = ExponentialFailureRateLimiter(base=1.0, cap=8.0)
    assert [limiter.when("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert limiter.when("b") == 1.0
    limiter.forget("a")
    assert limiter.retries("a") == 0
    assert limiter.when("a") == 1.0
    assert limiter.retries("b") == 1


def test_exponential_backoff_survives_huge_failure_counts() -> None:
    limiter = ExponentialFailureRateLimiter(base=0.005, cap=1000.0)
    for _ in range(2000):
        delay = limiter.when("k")
    assert delay == 1000.0


@pytest.mark.parametrize(
    ("base", "cap"), [(0, 1), (-1, 1), (2, 1)], ids=["zero", "neg", "cap<base"]
)
def test_exponential_backoff_rejects_bad_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="not a valid backoff"):
        ExponentialFailureRateLimiter(base=base, cap=cap)


def test_token_bucket_allows_burst_then_spaces_at_qps() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=10, burst=100, clock=clock)
    assert [bucket.when(i) for i in range(100)] == [0.0] * 100
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    clock.advance(1.0)  # refills 10 tokens, 2 of which pay back the debt
    assert [bucket.when(i) for i in range(8)] == [0.0] * 8
    assert bucket.when("z") == pytest.approx(0.1)


def test_token_bucket_refill_is_capped_at_burst() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=1, burst=2, clock=clock)
    clock.advance(1000)
    assert [bucket.when(i) for i in range(3)] == [0.0, 0.0, 1.0]


def test_default_limiter_takes_the_longer_delay() -> None:
    clock = FakeClock()
    limiter = default_rate_limiter(clock)
    # The bucket allows 100 at once, so the per-key backoff decides.
    assert [limiter.when("k") for _ in range(3)] == [0.005, 0.01, 0.02]
    for i in range(97):
        limiter.when(i)
    # Bucket exhausted: a fresh key waits for a token (0.1 s) rather than 5 ms.
    assert limiter.when("fresh") == pytest.approx(0.1)
    limiter.forget("k")
    assert limiter.retries("k") == 0


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaxOfRateLimiter()
