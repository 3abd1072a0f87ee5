"""Hostile input: malformed bodies, headers and query strings get a clean 4xx (never a 500) on
every API operation and every page, bodies over their size limit are refused before they are
read, JSON is bounded in depth and string length, and ingest is rate limited per token.

The operations and pages come from the routers and the URL resolver (as in
tests/accounts/test_role_matrix.py), so a new endpoint or page is covered the day it lands.
"""

import json
import logging
import os
import time
from urllib.parse import quote, urlencode

import pytest
from django import forms as django_forms

from accounts import services as account_services
from agents.models import Interaction
from console import forms as console_forms
from core.limits import TokenRateThrottle
from kpis import forms as kpi_forms
from retraining import forms as retraining_forms
from retraining import services as retraining_services
from reviews import forms as review_forms
from reviews.models import Review
from tests.accounts.test_role_matrix import OPERATIONS, PAGES, _fill
from tests.config.test_settings import _settings_in_subprocess
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


# --- The world every request runs against ---------------------------------------------------


@pytest.fixture
def world(settings, tmp_path):
    """A superuser (every role), an item they hold, a batch, a token: every URL parameter
    points at something real, so hostile input reaches the code behind the lookups."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    agent = AgentFactory(slug="support-bot", domain="support")
    item = ReviewItemFactory(
        interaction=InteractionFactory(agent=agent), claimed=True, claimed_by=root
    )
    batch = retraining_services.batch_request(
        agent=agent, format="jsonl", actor=root, enqueue=False
    )
    token, secret = account_services.token_create(user=root, name="hostile")
    values = {
        "item_id": item.pk,
        "user_id": root.pk,
        "slug": agent.slug,
        "token_id": token.pk,
        "pk": batch.pk,
        "batch_id": batch.pk,
    }
    return root, secret, values


def _api_url(path: str, values: dict) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    return path


# --- API: bodies ----------------------------------------------------------------------------

DEEP = 100_000  # far beyond any parser's recursion limit
MALFORMED_BODIES = {
    "truncated": b'{"verdict": ',
    "form-encoded": b"verdict=approve&agent=x",
    "non-utf8": b'{"verdict": "\xff\xfe"}',
    "lone-surrogate": b'{"verdict": "\\ud800", "username": "\\udfff"}',
    "nan": b'{"verdict": NaN, "agent": NaN, "filters": {"min_reviews": NaN}}',
    "infinity": b'[{"confidence": Infinity, "value": -Infinity}]',
    "huge-number": b'{"seconds_spent": 100000000000000000000000000000, "version": 1e400}',
    "huge-ints": json.dumps(
        {
            "verdict": "approve",
            "seconds_spent": 10**30,
            "version": 2**63,
            "agent_version": 10**30,
            "filters": {"min_reviews": 10**30},
        }
    ).encode(),
    "array-of-nulls": b"[null, null]",
    "scalar": b"42",
    "null": b"null",
    "empty-object": b"{}",
    "wrong-types": json.dumps(
        {
            "verdict": ["approve"],
            "agent": {"x": 1},
            "format": 3,
            "username": None,
            "agent_version": [],
            "filters": "yes",
            "new_only": "maybe",
            "domain": 1.5,
        }
    ).encode(),
    "wrong-filter-types": json.dumps(
        {
            "agent": "support-bot",
            "format": "jsonl",
            "filters": {
                "date_from": "2026-13-45",
                "date_to": {"a": 1},
                "sources": "approve",
                "error_categories": [[]],
                "agent_versions": 7,
                "min_reviews": "many",
                "kinds": [{}],
            },
        }
    ).encode(),
    "nul-characters": json.dumps(
        {"verdict": "approve", "notes": "a\u0000b", "agent": "\u0000", "username": "\u0000"}
    ).encode(),
    "deep-array": b"[" * DEEP + b"]" * DEEP,
    "deep-object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "items-of-wrong-shape": json.dumps(
        [
            {
                "external_id": ["x"],
                "agent": {"slug": 1},
                "context": [{"role": {}, "content": []}, "turn", None],
                "kind": ["x"],
                "confidence": "high",
                "turns": 10**30,
                "sentiment": -(10**30),
                "metadata": [1, 2],
                "created_at": "0001-01-01T00:00:00+05:00",
            },
            {"agent": "support-bot", "external_id": "x", "created_at": "2026-11-20T10:00:00-19:44"},
            {"agent": "support-bot", "external_id": "y", "created_at": "9999-12-31T23:00:00-05:00"},
        ]
    ).encode(),
}


def _api_operations():
    return [pytest.param(path, method, id=f"{method} {path}") for path, method, _ in OPERATIONS]


@pytest.mark.parametrize(("path", "method"), _api_operations())
def test_it_answers_malformed_api_bodies_with_a_4xx(client, world, path, method):
    client.raise_request_exception = False  # a 500 is collected, not raised
    _, secret, values = world
    failures = []
    for name, body in MALFORMED_BODIES.items():
        response = client.generic(
            method,
            _api_url(path, values),
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}"},
        )
        failures += _unclean(response, name)
    assert not failures, f"{method} {path}: {failures}"


def _unclean(response, what: str) -> list[str]:
    """Empty when the answer is below 500 and, for an API error, JSON with a `detail`."""
    if response.status_code >= 500:
        return [f"{what}: {response.status_code}"]
    if response.status_code >= 400 and response.wsgi_request.path.startswith("/api/"):
        if not response["Content-Type"].startswith("application/json"):
            return [f"{what}: {response.status_code} as {response['Content-Type']}"]
        if not isinstance(response.json().get("detail"), str):
            return [f"{what}: {response.status_code} without a detail"]
    return []


# --- API: query strings and headers ---------------------------------------------------------

API_PARAMS = ["agent", "from", "to", "version", "status", "assigned_to", "domain", "limit"]
API_PARAMS += ["offset", "page", "sort", "ids", "date", "format"]
HOSTILE_VALUES = {
    "word": "abc",
    "negative": "-1",
    "zero": "0",
    "huge": "99999999999999999999",
    "float": "1e309",
    "nan": "NaN",
    "bad-date": "2026-13-45",
    "far-date": "0001-01-01",
    "long": "x" * 10_000,
    "non-utf8": "%ff%fe",
    "markup": "<script>alert(1)</script>",
    "rtl-override": "\u202egnp.exe",
}


def _query(names, value: str) -> str:
    encoded = value if value.startswith("%") else quote(value)
    return "&".join(f"{name}={encoded}" for name in names)


@pytest.mark.parametrize(("path", "method"), _api_operations())
def test_it_answers_hostile_api_query_strings_with_a_4xx(client, world, path, method):
    client.raise_request_exception = False  # a 500 is collected, not raised
    _, secret, values = world
    failures = []
    queries = {name: _query(API_PARAMS, v) for name, v in HOSTILE_VALUES.items()}
    queries["repeated"] = "agent=a&agent=b&limit=1&limit=2&status=x&status=y"
    queries["empty-names"] = "=1&&=&==="
    agent = values["slug"]
    for edge in ("0001-01-01", "9999-12-31"):
        queries[f"edge-{edge}"] = f"agent={agent}&from={edge}&to={edge}&version=v1"
    for number in ("2147483648", "9223372036854775807", "9223372036854775808"):
        queries[f"number-{number}"] = f"agent={agent}&limit={number}&offset={number}"
    for name, query in queries.items():
        response = client.generic(
            method,
            f"{_api_url(path, values)}?{query}",
            b"{}",
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}"},
        )
        failures += _unclean(response, name)
    assert not failures, f"{method} {path}: {failures}"


WEIRD_AUTHORIZATION = {
    "scheme-only": "Bearer",
    "scheme-and-space": "Bearer ",
    "huge-token": "Bearer " + "x" * 10_000,
    "non-ascii": "Bearer cd_\u00e9\u00e8\u2603",
    "two-tokens": "Bearer a b",
    "basic": "Basic dXNlcjpwYXNz",
    "no-scheme": "cd_0123456789",
    "tab": "Bearer\tcd_x",
    "control-characters": "Bearer \x01\x02\x7f",
}


@pytest.mark.parametrize(("path", "method"), _api_operations())
def test_it_answers_401_to_weird_authorization_headers(client, world, path, method):
    _, _, values = world
    answers = {}
    for name, header in WEIRD_AUTHORIZATION.items():
        response = client.generic(
            method,
            _api_url(path, values),
            b"{}",
            content_type="application/json",
            headers={"Authorization": header},
        )
        answers[name] = (response.status_code, response.json().get("detail"))
    assert all(status == 401 and detail for status, detail in answers.values()), answers


# --- API: helpful messages ------------------------------------------------------------------


def _nested(depth: int, leaf) -> dict:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def test_it_names_the_path_of_an_ingest_value_nested_too_deeply(api_client, pipeline, settings):
    settings.JSON_MAX_DEPTH = 8
    items = [{"external_id": f"t-{i}", "metadata": {}} for i in range(4)]
    items[3]["metadata"] = _nested(10, 1)
    response = api_client(pipeline).post("/api/v1/interactions", items)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "items[3].metadata.a.a.a.a.a.a: nested deeper than 8 levels"
    )
    assert not Interaction.objects.exists()


def test_it_names_the_path_of_a_body_value_nested_too_deeply(api_client, ml, settings):
    settings.JSON_MAX_DEPTH = 4
    body = {"agent": "support-bot", "format": "jsonl", "filters": {"x": [[{"y": 1}]]}}
    response = api_client(ml).post("/api/v1/exports", body)
    assert response.status_code == 400
    assert response.json()["detail"] == "body.filters.x[0][0]: nested deeper than 4 levels"


@pytest.mark.parametrize("path", ["/api/v1/interactions", "/api/v1/exports"])
def test_it_answers_400_to_json_nested_beyond_the_recursion_limit(api_client, lead, path):
    response = api_client(lead).post(path, b"[" * DEEP + b"]" * DEEP)
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_it_names_the_path_of_a_too_long_string(api_client, pipeline, settings):
    settings.JSON_MAX_STRING_CHARS = 100
    items = [{"external_id": "t-1", "metadata": {"note": "x" * 101}}]
    response = api_client(pipeline).post("/api/v1/interactions", items)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "items[0].metadata.note: a string longer than 100 characters"
    )


def test_it_names_a_too_long_key(api_client, ml, settings):
    settings.JSON_MAX_STRING_CHARS = 100
    body = {"agent": "support-bot", "format": "jsonl", "filters": {"k" * 101: 1}}
    response = api_client(ml).post("/api/v1/exports", body)
    assert response.status_code == 400
    assert response.json()["detail"] == ("body.filters: a key longer than 100 characters")


def test_it_refuses_nan_in_an_api_body(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/queue/claim", b'{"agent": NaN}')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body is not valid JSON")


def test_it_refuses_non_utf8_in_an_api_body(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/queue/claim", b'{"agent": "\xff"}')
    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


def test_it_refuses_a_body_that_is_not_an_object(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/queue/claim", b"[1, 2]")
    assert response.status_code == 400
    assert response.json()["detail"] == "body must be a JSON object, got an array"


def test_it_refuses_a_nul_character_in_an_api_body(api_client, lead):
    response = api_client(lead).post("/api/v1/items/1/assign", {"username": "ri\u0000ta"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "body.username: a string with a NUL character (\\u0000), which cannot be stored"
    )


def test_it_refuses_a_query_parameter_given_twice(api_client, lead):
    response = api_client(lead).get("/api/v1/items?limit=1&limit=500")
    assert response.status_code == 400
    assert response.json()["detail"] == "query parameter 'limit' is given 2 times"


def test_it_refuses_an_out_of_range_offset_with_the_field(api_client, lead):
    response = api_client(lead).get("/api/v1/items?offset=99999999999999999999")
    assert response.status_code == 400
    assert "offset" in response.json()["errors"]


def test_it_refuses_a_huge_seconds_spent_with_the_field(api_client, world, client):
    _, secret, values = world
    response = client.post(
        f"/api/v1/items/{values['item_id']}/decision",
        {"verdict": "approve", "seconds_spent": 10**30},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 400
    assert "seconds_spent" in response.json()["errors"]


def test_it_reports_an_unstorable_timestamp_offset_per_item(api_client, pipeline):
    items = [
        {
            "external_id": "t-1",
            "agent": "support-bot",
            "input": "Q",
            "output": "A",
            "confidence": 0.5,
            "created_at": "2026-11-20T10:00:00-19:44",
        },
        {
            "external_id": "t-2",
            "agent": "support-bot",
            "input": "Q",
            "output": "A",
            "confidence": 0.5,
            "created_at": "9999-12-31T23:00:00-05:00",
        },
    ]
    response = api_client(pipeline).post("/api/v1/interactions", items)
    assert response.status_code == 200
    assert response.json()["created"] == 1
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "created_at")]
    assert Interaction.objects.get().created_at.isoformat() == "2026-11-21T05:44:00+00:00"


def test_it_reports_a_nul_character_anywhere_in_the_context_per_item(api_client, pipeline):
    turn = {"role": "user", "content": "hi", "extra": {"k\u0000": "v"}}
    item = {"external_id": "t-1", "agent": "support-bot", "input": "Q", "output": "A"}
    response = api_client(pipeline).post(
        "/api/v1/interactions", [{**item, "confidence": 0.5, "context": [turn]}]
    )
    assert response.status_code == 200
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "context",
            "message": "contains a NUL character (\\u0000), which cannot be stored",
        }
    ]


def test_it_reports_a_context_too_deep_to_store_per_item(api_client, pipeline, settings):
    settings.JSON_MAX_DEPTH = 1000  # past the API's own limit, into what storage can take
    turn = {"role": "user", "content": "hi", "extra": _nested(300, 1)}
    item = {"external_id": "t-1", "agent": "support-bot", "input": "Q", "output": "A"}
    response = api_client(pipeline).post(
        "/api/v1/interactions", [{**item, "confidence": 0.5, "context": [turn]}]
    )
    assert response.status_code == 200
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("context", "must be plain JSON (finite numbers, UTF-8 strings)")
    ]


# --- Body size ------------------------------------------------------------------------------


def test_it_answers_413_from_content_length_before_reading_an_api_body(api_client, reviewer):
    # The declared length is far beyond the bytes sent: reading the body would fail, so a
    # 413 shows the body was never read.
    response = api_client(reviewer).post("/api/v1/queue/claim", b"{}", CONTENT_LENGTH=str(MIB + 1))
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"the body is {MIB + 1:,} bytes; the limit here is {MIB:,} bytes"
    }


def test_it_answers_413_as_html_on_pages(client, reviewer):
    client.force_login(reviewer)
    response = client.post(
        "/queue/claim",
        b"x=1",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(MIB + 1),
    )
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert b"Request too large" in response.content


def test_page_forms_get_the_smaller_form_limit(client, reviewer, settings):
    """Decoding a url-encoded form costs far more CPU per byte than JSON: page forms stop at
    FORM_MAX_BODY_BYTES (above the largest legitimate form, see the next-but-one test)."""
    client.force_login(reviewer)
    limit = settings.FORM_MAX_BODY_BYTES
    assert limit < settings.MAX_BODY_BYTES
    over = client.post(
        "/queue/claim",
        b"x=1",
        content_type="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(limit + 1),
    )
    assert over.status_code == 413
    assert f"the limit here is {limit:,} bytes".encode() in over.content


def test_it_gives_ingest_the_larger_body_limit(api_client, pipeline, settings):
    settings.MAX_BODY_BYTES = 2048
    settings.INGEST_MAX_BODY_BYTES = 64 * 1024
    items = [
        {
            "external_id": f"t-{i}",
            "agent": "support-bot",
            "input": "Q" * 100,
            "output": "A",
            "confidence": 0.5,
        }
        for i in range(40)
    ]
    assert 2048 < len(json.dumps(items)) < 64 * 1024
    response = api_client(pipeline).post("/api/v1/interactions", items)
    assert response.status_code == 200
    assert response.json()["created"] == 40


def test_it_answers_413_over_the_ingest_body_limit(api_client, pipeline, settings):
    settings.INGEST_MAX_BODY_BYTES = 64 * 1024
    response = api_client(pipeline).post("/api/v1/feedback", b"[]", CONTENT_LENGTH="65537")
    assert response.status_code == 413
    assert "the limit here is 65,536 bytes" in response.json()["detail"]


def test_it_lets_the_largest_review_form_through(client, world, settings):
    # The largest text a page posts: a correction of INGEST_MAX_TEXT_CHARS characters that
    # each take 4 bytes in UTF-8 (12 once percent-encoded).
    root, _, values = world
    client.force_login(root)
    form = {
        "verdict": "correct",
        "corrected_output": "\U0001f680" * settings.INGEST_MAX_TEXT_CHARS,
        "notes": "n" * 2000,
    }
    body = urlencode(form)
    assert len(body) > 200_000
    response = client.post(
        f"/review/{values['item_id']}/decide",
        body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 302
    assert Review.objects.get().corrected_output == form["corrected_output"]


def test_it_refuses_a_malformed_content_length(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/queue/claim", b"{}", CONTENT_LENGTH="12abc")
    assert response.status_code == 400
    assert response.json()["detail"] == "the Content-Length header is not a number of bytes"


def test_it_answers_411_to_a_chunked_body_without_content_length(api_client, pipeline):
    response = api_client(pipeline).post(
        "/api/v1/interactions", b"[]", CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]


def test_it_reads_the_limits_from_the_environment():
    done = _settings_in_subprocess(
        {
            "MAX_BODY_BYTES": "4096",
            "INGEST_MAX_BODY_BYTES": "8192",
            "INGEST_RATE_LIMIT_PER_MINUTE": "7",
        },
        "settings.MAX_BODY_BYTES, settings.INGEST_MAX_BODY_BYTES, "
        "settings.DATA_UPLOAD_MAX_MEMORY_SIZE, settings.INGEST_RATE_LIMIT_PER_MINUTE, "
        "settings.MIDDLEWARE.index('core.limits.RequestSizeLimitMiddleware')",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(4096, 8192, 8192, 7, 1)"


def test_it_refuses_an_ingest_body_limit_below_the_general_one():
    done = _settings_in_subprocess(
        {"MAX_BODY_BYTES": "4096", "INGEST_MAX_BODY_BYTES": "2048"}, "settings.MAX_BODY_BYTES"
    )
    assert done.returncode != 0
    assert "INGEST_MAX_BODY_BYTES at least MAX_BODY_BYTES" in done.stderr


# --- Rate limit -----------------------------------------------------------------------------


def _away_from_the_window_edge():
    """The limit counts in fixed one-minute windows: start a burst that fits in one."""
    if time.time() % 60 > 55:
        time.sleep(61 - time.time() % 60)


def _item(external_id: str) -> list[dict]:
    return [
        {
            "external_id": external_id,
            "agent": "support-bot",
            "input": "Q",
            "output": "A",
            "confidence": 0.9,
        }
    ]


def test_it_answers_429_with_retry_after_past_the_per_token_limit(api_client, pipeline, settings):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 2
    client = api_client(pipeline)
    _away_from_the_window_edge()
    statuses = [client.post("/api/v1/interactions", _item(f"t-{i}")).status_code for i in range(2)]
    refused = client.post("/api/v1/feedback", [])
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith(
        "too many requests (the limit is 2 requests per minute per token); retry in"
    )
    assert Interaction.objects.count() == 2


def test_it_counts_each_token_on_its_own(api_client, pipeline, settings):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 1
    first, second = api_client(pipeline), api_client(pipeline)
    _away_from_the_window_edge()
    assert first.post("/api/v1/interactions", _item("t-1")).status_code == 200
    assert first.post("/api/v1/interactions", _item("t-2")).status_code == 429
    assert second.post("/api/v1/interactions", _item("t-3")).status_code == 200
    assert sorted(Interaction.objects.values_list("external_id", flat=True)) == ["t-1", "t-3"]


def test_it_does_not_rate_limit_other_endpoints(api_client, reviewer, settings):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 1
    client = api_client(reviewer)
    responses = [client.post("/api/v1/queue/claim", {}) for _ in range(3)]
    assert [(r.status_code, r.content) for r in responses] == [(204, b"")] * 3


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",  # raises on every call
        "core.cache.ResilientRedisCache",  # production's: answers like an empty cache
    ],
)
def test_it_lets_ingest_through_when_the_cache_is_down(
    api_client, pipeline, settings, caplog, backend
):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 1
    # A real Redis client against a port nothing listens on: every cache call fails.
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:1/0"}}
    TokenRateThrottle._warned_at = float("-inf")  # warn again in this test
    client = api_client(pipeline)
    with caplog.at_level(logging.WARNING):
        statuses = [
            client.post("/api/v1/interactions", _item(f"t-{i}")).status_code for i in range(3)
        ]
    assert statuses == [200, 200, 200]
    assert Interaction.objects.count() == 3
    if backend.endswith(".RedisCache"):
        warnings = [r for r in caplog.records if r.name == "core.limits"]
        assert len(warnings) == 1  # once a minute, not once a request
        assert "rate limit not enforced: the cache is unavailable" in warnings[0].getMessage()


@pytest.mark.redis
def test_it_counts_in_redis_shared_by_every_process(api_client, pipeline, settings):
    settings.INGEST_RATE_LIMIT_PER_MINUTE = 2
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("TEST_REDIS_URL", ""),
        }
    }
    client = api_client(pipeline)
    _away_from_the_window_edge()
    statuses = [client.post("/api/v1/interactions", _item(f"t-{i}")).status_code for i in range(3)]
    assert statuses == [200, 200, 429]


# --- Pages ----------------------------------------------------------------------------------

PROJECT_FORMS = [
    value
    for module in (review_forms, console_forms, kpi_forms, retraining_forms)
    for value in vars(module).values()
    if isinstance(value, type) and issubclass(value, django_forms.BaseForm)
]


def _fields_by_kind() -> tuple[list[str], list[str], list[str]]:
    """(every field name, the date fields, the number fields) of the project's forms, plus
    the raw parameters views read themselves."""
    names = {"page", "sort", "format", "ids", "verdict", "q", "date", "next", "preview"}
    dates, numbers = {"date"}, {"page", "item"}
    for form in PROJECT_FORMS:
        for name, field in form.base_fields.items():
            names.add(name)
            if isinstance(field, django_forms.DateField | django_forms.DateTimeField):
                dates.add(name)
            elif isinstance(field, django_forms.IntegerField) or (  # Float, Decimal too
                isinstance(field, django_forms.TypedChoiceField) and field.coerce in (int, float)
            ):
                numbers.add(name)
    return sorted(names), sorted(dates), sorted(numbers)


FIELDS, DATE_FIELDS, NUMBER_FIELDS = _fields_by_kind()
DATE_VALUES = ["0001-01-01", "9999-12-31", "2026-13-45", "2026-02-30", "0000-00-00"]
NUMBER_VALUES = ["99999999999999999999", "-99999999999999999999", "1e309", "-1e309", "nan"]
NUMBER_VALUES += ["2147483648", "9223372036854775808", "-1", "0.5", "0x10"]


def _baseline(values: dict) -> dict:
    """Plausible values for the fields every form needs, so a hostile date or number gets
    past the first "this field is required" and into the code behind the form."""
    return {
        "agent": values["slug"],
        "format": "jsonl",
        "dataset": "pairs",
        "verdict": "approve",
        "action": "priority",
        "scope": "matching",
        "reviewer": "rita",
        "days": "30",
        "sources": "approve",
        "kind": "clicked",
        "kinds": "clicked",
        "name": "a name",
        "agent_version": "v1",
    }


def _page_variants(values: dict) -> dict[str, str]:
    """Hostile query strings / form bodies by name."""
    base = _baseline(values)
    variants = {f"all-{name}": _query(FIELDS, v) for name, v in HOSTILE_VALUES.items()}
    for value in DATE_VALUES:
        variants[f"dates-{value}"] = urlencode({**base, **dict.fromkeys(DATE_FIELDS, value)})
    for value in NUMBER_VALUES:
        variants[f"numbers-{value}"] = urlencode({**base, **dict.fromkeys(NUMBER_FIELDS, value)})
    variants["repeated"] = "&".join(f"{f}=1&{f}=2" for f in FIELDS)
    variants["empty-names"] = "=1&&=&==="
    return variants


def _pages():
    return [pytest.param(route, id=name) for (route, name), _ in PAGES]


@pytest.mark.parametrize("route", _pages())
def test_it_answers_hostile_query_strings_on_pages_below_500(client, world, route):
    client.raise_request_exception = False  # a 500 is collected, not raised
    root, _, values = world
    client.force_login(root)
    url = _fill(route, values)
    failures = []
    for name, query in _page_variants(values).items():
        for htmx in (False, True) if name.startswith("all-") else (False,):
            headers = {"HX-Request": "true"} if htmx else {}
            response = client.get(f"{url}?{query}", headers=headers)
            if response.status_code >= 500:
                failures.append(f"{name}{' (htmx)' if htmx else ''}: {response.status_code}")
    assert not failures, f"GET {url}: {failures}"


RAW_FORMS = {
    "non-utf8": b"verdict=%ff%fe&notes=\xff\xfe&agent=\xc3",
    "json-as-form": b'{"verdict": "approve"}',
    "too-many-fields": b"&".join(b"f%d=1" % i for i in range(1500)),
}


@pytest.mark.parametrize("route", _pages())
def test_it_answers_hostile_form_posts_on_pages_below_500(client, world, route):
    client.raise_request_exception = False  # a 500 is collected, not raised
    root, _, values = world
    client.force_login(root)
    url = _fill(route, values)
    bodies = {name: q.encode() for name, q in _page_variants(values).items()} | RAW_FORMS
    failures = []
    for name, body in bodies.items():
        response = client.post(url, body, content_type="application/x-www-form-urlencoded")
        if response.status_code >= 500:
            failures.append(f"{name}: {response.status_code}")
    assert not failures, f"POST {url}: {failures}"


@pytest.mark.parametrize("route", _pages())
def test_it_refuses_nul_in_a_page_query_string(client, world, route):
    root, _, values = world
    client.force_login(root)
    response = client.get(f"{_fill(route, values)}?agent=%00&page=1")
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_it_refuses_nul_in_a_form(client, world):
    root, _, _ = world
    client.force_login(root)
    response = client.post(
        "/accounts/tokens/", b"name=ci%00", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert b"the form contains a NUL character" in response.content


def test_it_refuses_nul_in_an_api_query_string(api_client, lead):
    response = api_client(lead).get("/api/v1/items?agent=%00")
    assert response.status_code == 400
    assert response.json() == {"detail": "the query string contains a NUL character (%00)"}
