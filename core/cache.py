"""A Redis cache that answers like an empty cache while Redis is unreachable.

The cache holds nothing that must survive (login-failure counters, rate-limit windows), so
a Redis outage must not turn every page into a 500: reads miss, writes are dropped, counters
start again, and one warning per minute says so. Short socket timeouts (settings) keep a
dead Redis from stalling requests.
"""

import logging
import time
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache

log = logging.getLogger(__name__)

_WARN_EVERY = 60.0


class ResilientRedisCache(RedisCache):
    _warned_at = 0.0

    def _unavailable(self, operation: str, exc: Exception, fallback: Any) -> Any:
        now = time.monotonic()
        if now - ResilientRedisCache._warned_at > _WARN_EVERY:
            ResilientRedisCache._warned_at = now
            log.warning("cache unavailable (%s: %s); answering as a miss", operation, exc)
        return fallback

    def add(self, key, value, timeout=None, version=None):
        try:
            return super().add(key, value, timeout, version)
        except redis.RedisError as exc:
            return self._unavailable("add", exc, False)

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except redis.RedisError as exc:
            return self._unavailable("get", exc, default)

    def set(self, key, value, timeout=None, version=None):
        try:
            super().set(key, value, timeout, version)
        except redis.RedisError as exc:
            self._unavailable("set", exc, None)

    def touch(self, key, timeout=None, version=None):
        try:
            return super().touch(key, timeout, version)
        except redis.RedisError as exc:
            return self._unavailable("touch", exc, False)

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except redis.RedisError as exc:
            return self._unavailable("delete", exc, False)

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except redis.RedisError as exc:
            return self._unavailable("get_many", exc, {})

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except redis.RedisError as exc:
            return self._unavailable("has_key", exc, False)

    def incr(self, key, delta=1, version=None):
        """Counts from zero while Redis is away (a fail-open rate limit)."""
        try:
            return super().incr(key, delta, version)
        except redis.RedisError as exc:
            return self._unavailable("incr", exc, delta)

    def set_many(self, data, timeout=None, version=None):
        try:
            return super().set_many(data, timeout, version)
        except redis.RedisError as exc:
            return self._unavailable("set_many", exc, list(data))

    def delete_many(self, keys, version=None):
        try:
            return super().delete_many(keys, version)
        except redis.RedisError as exc:
            return self._unavailable("delete_many", exc, False)

    def clear(self):
        try:
            return super().clear()
        except redis.RedisError as exc:
            return self._unavailable("clear", exc, False)
