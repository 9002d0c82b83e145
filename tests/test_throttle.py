"""The unlock box's limiter: failures per client address and overall, in a sliding window, on an injected clock."""

from __future__ import annotations

import threading

import pytest

from driftboard.dashboard.throttle import AttemptLimiter


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_client_is_refused_after_its_failures_fill_the_window(clock):
    limiter = AttemptLimiter(per_client=3, overall=10, window_seconds=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("203.0.113.7") == 0
        limiter.failed("203.0.113.7")
        clock.now += 5
    assert limiter.retry_after("203.0.113.7") == pytest.approx(45)  # the first failure leaves at t0 + 60
    assert limiter.retry_after("198.51.100.9") == 0  # another address is not held back
    clock.now += 44
    assert limiter.retry_after("203.0.113.7") == pytest.approx(1)
    clock.now += 1
    assert limiter.retry_after("203.0.113.7") == 0  # one failure left the window: one more attempt
    limiter.failed("203.0.113.7")
    assert limiter.retry_after("203.0.113.7") == pytest.approx(5)  # the second failure leaves next


def test_the_overall_cap_holds_back_every_address(clock):
    limiter = AttemptLimiter(per_client=2, overall=5, window_seconds=100, clock=clock)
    for i in range(5):
        limiter.failed(f"10.0.0.{i}")  # five addresses, one failure each: none reaches its own limit
        clock.now += 1
    assert limiter.failures() == 5 and limiter.failures("10.0.0.0") == 1
    assert limiter.retry_after("192.0.2.1") == pytest.approx(95)  # a fresh address too
    clock.now += 95
    assert limiter.retry_after("192.0.2.1") == 0


def test_failures_are_forgotten_after_the_window_and_memory_stays_bounded(clock):
    limiter = AttemptLimiter(per_client=5, overall=50, window_seconds=10, clock=clock)
    for i in range(50):
        limiter.failed(f"client-{i}")
    clock.now += 10
    assert limiter.failures() == 0
    assert limiter.retry_after("client-1") == 0
    assert limiter._by_client == {}  # no address is kept once its failures have left the window


def test_refused_attempts_are_not_counted(clock):
    """The caller checks retry_after first and counts only tokens it checked: asking does not extend a block."""
    limiter = AttemptLimiter(per_client=1, overall=5, window_seconds=30, clock=clock)
    limiter.failed("a")
    for _ in range(100):
        assert limiter.retry_after("a") > 0
    clock.now += 30
    assert limiter.retry_after("a") == 0 and limiter.failures("a") == 0


def test_failures_from_many_threads_all_count():
    limiter = AttemptLimiter(per_client=10_000, overall=10_000, window_seconds=3600)
    threads = [threading.Thread(target=lambda: [limiter.failed("a") for _ in range(500)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter.failures("a") == 4000


@pytest.mark.parametrize(("per_client", "overall", "window"), [(0, 5, 10), (6, 5, 10), (1, 5, 0)])
def test_nonsense_limits_are_refused(per_client, overall, window):
    with pytest.raises(ValueError):
        AttemptLimiter(per_client, overall, window)
