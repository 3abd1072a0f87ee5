"""The resilient cache (core/cache.py): a Redis outage is a cache miss, never an error."""

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1


DEAD_CACHE = {
    "default": {
        "BACKEND": "core.cache.ResilientRedisCache",
        "LOCATION": DEAD_BROKER,
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


def test_it_answers_like_an_empty_cache_when_redis_is_down(settings):
    from django.core.cache import caches

    settings.CACHES = DEAD_CACHE
    cache = caches.create_connection("default")
    assert cache.get("k", "fallback") == "fallback"
    assert cache.add("k", 1) is False
    assert cache.incr("k") == 1
    cache.set("k", 2)  # dropped, no error


def test_it_lets_users_log_in_when_redis_is_down(client, reviewer, settings):
    settings.CACHES = DEAD_CACHE
    response = client.post(
        "/accounts/login/", {"username": "rita", "password": "pw-for-tests"}, follow=True
    )
    assert response.status_code == 200
    assert response.context["user"].is_authenticated
