"""TokenRateThrottle: a sliding window, so a window boundary does not double the budget."""

import orjson
import pytest
from django.core.cache import caches
from django.test import RequestFactory

from core import limits
from core.limits import TokenRateThrottle

WINDOW = TokenRateThrottle.WINDOW


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(1_000_000 * WINDOW)
    monkeypatch.setattr(limits.time, "time", clock.time)
    return clock


@pytest.fixture
def throttle(settings):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 5
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    caches["default"].clear()
    return TokenRateThrottle("INGEST_RATE_LIMIT_PER_MINUTE", scope="test")


def ask(throttle, secret="cd_limits-test"):  # noqa: S107 (a test token)
    request = RequestFactory().post("/api/v1/interactions", HTTP_AUTHORIZATION=f"Bearer {secret}")
    return throttle.allow_request(request)


def test_it_does_not_double_the_budget_at_a_window_boundary(throttle, clock):
    clock.now = clock.now - clock.now % WINDOW + WINDOW - 0.5  # just before a minute starts
    before = [ask(throttle) for _ in range(5)]
    clock.now += 1  # just after it
    after = [ask(throttle) for _ in range(5)]
    assert before == [True] * 5
    assert after == [False] * 5


def test_it_allows_at_most_the_limit_in_any_window_length_span(throttle, clock):
    # One request every 7 seconds for five minutes: never more than 5 pass in any 60 s span.
    passed = []
    for _ in range(300 // 7):
        clock.now += 7
        if ask(throttle):
            passed.append(clock.now)
    assert passed
    for start in passed:
        assert len([t for t in passed if start <= t < start + WINDOW]) <= 5


def test_it_frees_the_budget_once_a_window_has_passed(throttle, clock):
    assert [ask(throttle) for _ in range(6)] == [True] * 5 + [False]
    wait = throttle.wait()
    assert 1 <= wait <= WINDOW
    clock.now += WINDOW + TokenRateThrottle.SLOT  # the whole span the limit looks at
    assert ask(throttle) is True


def test_it_does_not_count_refused_requests(throttle, clock):
    # A client that keeps retrying while refused is not locked out for good.
    assert [ask(throttle) for _ in range(5)] == [True] * 5
    for _ in range(50):
        clock.now += 1
        ask(throttle)
    clock.now += WINDOW + TokenRateThrottle.SLOT - 50
    assert ask(throttle) is True


def test_it_counts_each_token_on_its_own(throttle, clock):
    assert [ask(throttle, "cd_a") for _ in range(6)] == [True] * 5 + [False]
    assert ask(throttle, "cd_b") is True


def test_a_wide_shallow_body_passes_and_a_deep_one_is_named(settings):
    """Many sibling containers (more brackets than the depth limit, yet shallow) pass without
    a walk of every value; depth and string limits are still found, with their path."""
    from core.limits import JsonRejected, check_shape

    settings.JSON_MAX_DEPTH = 5
    wide = [{"context": [{"role": "user", "content": "[[[["} for _ in range(50)]}]
    check_shape(wide, root="items", raw=orjson.dumps(wide), refuse_nul=True)

    deep = [{"context": [{"a": [[[1]]]}]}]
    with pytest.raises(
        JsonRejected, match=r"^items\[0\]\.context\[0\]\.a\[0\]: nested deeper than 5"
    ):
        check_shape(deep, root="items", raw=orjson.dumps(deep))
    settings.JSON_MAX_STRING_CHARS = 10
    long = [{"context": [{"content": "x" * 11}]}]
    with pytest.raises(JsonRejected, match=r"^items\[0\]\.context\[0\]\.content: a string longer"):
        check_shape(long, root="items", raw=orjson.dumps(long))
