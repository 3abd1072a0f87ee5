"""Free-text benchmark (issue 17): for every endpoint that takes free text from a user, the
CPU time of the worst request we could build at the documented input limits, beside a
minimal valid request to the same endpoint in the same run.

    python bench/free_text.py [--quick] [--repeat 3] [--only TEXT] [--database-url URL]
                              [--drop-db]

Shapes are adversarial, not only long: deep or wide JSON, many tiny records, thousands of
keys, fields or list values, long lines without spaces, combining marks, RTL and zero-width
characters, texts made to defeat the word diff (one token per byte) and the Markdown
renderer (its costliest shape at the markup budget, bench/markdown.py), near-limit bodies.
The limits: MAX_BODY_BYTES (1 MiB) for forms and API bodies, INGEST_MAX_BODY_BYTES and
INGEST_MAX_ITEMS_PER_REQUEST for bulk ingest, the field limits of ingest (a max-size item:
20,000-character texts, 200 context turns of 20,000 characters, 16 KiB of metadata),
Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000 fields) and, for query strings and paths,
gunicorn's default request line (4,094 bytes; the README serves the app with gunicorn's
defaults).

Each request goes through Django's test Client in this process (every middleware, no
network). `cpu_ms` is this process's CPU time around it (time.process_time: templates, ORM,
JSON, Celery publishing), `db_cpu_ms` the PostgreSQL backend's CPU in the same span (its
/proc/PID/schedstat; null when the server is not local), `input_parse_ms` the CPU of only
decoding the same input (QueryDict, or orjson for JSON): the floor of any endpoint. Target:
under 100 ms of CPU per request; an endpoint over it is profiled (cProfile) and its hot spots
printed. The table goes to stderr; the last stdout line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import importlib.util
import io
import json
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import orjson
from _common import (
    BENCH_DB_PREFIX,
    BENCH_SECRET_KEY,
    ROOT,
    bench_database_url,
    database_name,
    drop_database,
    emit_figures,
    machine_load,
    setup_database,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_ft"
QUEUE = "coachdesk_bench_ft"  # Celery queue of this bench: no worker of anything else sees it
TARGET_MS = 100.0
REQUEST_LINE = 4094  # gunicorn's limit_request_line default
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
PASSWORD = "Bench-pass-4-free-text"
TEXT = 20_000  # settings.INGEST_MAX_TEXT_CHARS (asserted at start)

# Text units, repeated to fill a field.
TOKENS = "a."  # one diff token per byte, urlencoded or in JSON
COMBINING = "e\u0301\u0301\u0301"  # a letter under a stack of combining acute accents
RTL_ZW = "\u202e\u200b\u200f\u05d0\u200d"  # RTL override, zero-width space / joiner, alef
NO_SPACE = "x"
PROSE = "Thanks for waiting: the parcel left our warehouse this morning and arrives soon. "


def err(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def _sibling(name: str) -> Any:
    """bench/<name>.py as a module (its adversarial shapes), under a name of its own."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- inputs at the limits -----------------------------------------------------------------------


def form(pairs: list[tuple[str, Any]]) -> bytes:
    return urlencode(pairs).encode()


def form_fill(pairs: list[tuple[str, Any]], name: str, unit: str, limit: int) -> bytes:
    """`pairs` and then `name` = `unit` repeated, the urlencoded body filled up to `limit`."""
    head = len(form(pairs)) + (1 if pairs else 0) + len(quote_plus(name)) + 1
    body = form([*pairs, (name, unit * ((limit - head) // len(quote_plus(unit))))])
    assert len(body) <= limit, (len(body), limit)
    return body


def form_fields(pairs: list[tuple[str, Any]], name: str, limit: int, max_fields: int) -> bytes:
    """`pairs` and as many `name` fields as Django takes, their values filling the body."""
    n = max_fields - len(pairs)
    room = (limit - len(form(pairs)) - n * (len(quote_plus(name)) + 2)) // n
    body = form([*pairs, *((name, TOKENS * (room // 2)) for _ in range(n))])
    assert len(body) <= limit, (len(body), limit)
    return body


def json_fill(build: Callable[[str], Any], unit: str, limit: int) -> bytes:
    """The JSON of `build(text)`, `text` being `unit` repeated to fill `limit` bytes."""
    empty = len(orjson.dumps(build("")))
    body = orjson.dumps(build(unit * ((limit - empty) // (len(orjson.dumps(unit)) - 2))))
    assert len(body) <= limit, (len(body), limit)
    return body


def json_keys(base: dict, limit: int, inside: str = "") -> bytes:
    """`base` plus as many short unknown keys as fit in `limit` bytes (in `base[inside]`)."""
    room = limit - len(orjson.dumps(base)) - 1
    keys = {f"k{i:07d}": 0 for i in range(room // len(b',"k0000000":0'))}
    body = orjson.dumps({**base, inside: keys} if inside else {**base, **keys})
    assert len(body) <= limit, (len(body), limit)
    return body


def distinct_ids(room: int, prefix: str = "") -> str:
    """`1,2,3,…` (with `prefix` before each) as long as its urlencoded form fits `room`."""
    parts, size, i = [], 0, 1
    while size + len(prefix) + len(str(i)) + 3 <= room:  # "," is "%2C" in a form body
        parts.append(f"{prefix}{i}")
        size += len(prefix) + len(str(i)) + 3
        i += 1
    return ",".join(parts)


def query(path: str, pairs: list[tuple[str, Any]]) -> str:
    qs = urlencode(pairs)
    assert len(f"GET {path}?{qs} HTTP/1.1") <= REQUEST_LINE, (path, len(qs))
    return f"{path}?{qs}" if qs else path


def query_fill(path: str, pairs: list[tuple[str, Any]], name: str, unit: str) -> str:
    """`pairs` and `name` = `unit` repeated, the request line filled to gunicorn's limit."""
    head = len(f"GET {path}? HTTP/1.1") + len(urlencode(pairs)) + 1 + len(quote_plus(name)) + 1
    return query(path, [*pairs, (name, unit * ((REQUEST_LINE - head) // len(quote_plus(unit))))])


def query_params(path: str, name: str, value: str, max_fields: int) -> str:
    """`name=value` repeated: as many parameters as fit in the request line and in Django."""
    one = len(quote_plus(name)) + 1 + len(quote_plus(value)) + 1
    n = min(max_fields, (REQUEST_LINE - len(f"GET {path}? HTTP/1.1")) // one)
    return query(path, [(name, value)] * n)


def path_fill(prefix: str, unit: str, suffix: str = "/") -> str:
    room = REQUEST_LINE - len(f"GET {prefix}{suffix} HTTP/1.1")
    return prefix + quote(unit * (room // len(quote(unit)))) + suffix


# --- requests and their CPU ---------------------------------------------------------------------


@dataclass
class Req:
    client: Any
    method: str
    path: str
    body: bytes = b""
    content_type: str = FORM
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def input_bytes(self) -> int:
        parts = urlsplit(self.path)
        return len(self.body) + len(parts.query) + len(parts.path)


Make = Callable[[], Req]


def req(
    client: Any,
    method: str,
    path: str | Callable[[], str],
    body: bytes | Callable[[], bytes] = b"",
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
    prep: Callable[[], Any] | None = None,
) -> Make:
    """A request maker: `prep` (state reset, outside the timed span), then the request; a
    callable path or body is built at that moment (e.g. for the item held then)."""

    def make() -> Req:
        if prep is not None:
            prep()
        where = path() if callable(path) else path
        raw = body() if callable(body) else body
        return Req(client, method, where, raw, content_type, headers or {})

    return make


@dataclass
class Endpoint:
    name: str
    baseline: Make
    shapes: dict[str, Make]
    note: str = ""


@dataclass
class Figures:
    cpu_ms: list[float]
    db_ms: list[float]
    status: int
    input_bytes: int

    @property
    def median(self) -> float:
        return round(statistics.median(self.cpu_ms), 1)


def send(r: Req) -> Any:
    if r.method == "GET":
        response = r.client.get(r.path, headers=r.headers)
    else:
        response = r.client.post(r.path, r.body, content_type=r.content_type, headers=r.headers)
    if response.streaming:  # the work of a streamed answer happens as it is read
        for _ in response.streaming_content:
            pass
    return response


def _backend() -> int | None:
    from django.db import connection

    connection.ensure_connection()
    return connection.connection.info.backend_pid if connection.connection else None


def _backend_cpu_ns(pid: int | None) -> int | None:
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def measure(make: Make, repeat: int) -> Figures:
    cpu, db, status, size = [], [], 0, 0
    for _ in range(repeat):
        r = make()
        size = r.input_bytes
        gc.collect()
        pid = _backend()
        db_before = _backend_cpu_ns(pid)
        started = time.process_time()
        response = send(r)
        cpu.append((time.process_time() - started) * 1000)
        db_after = _backend_cpu_ns(pid) if _backend() == pid else None
        if db_before is not None and db_after is not None:
            db.append((db_after - db_before) / 1e6)
        status = response.status_code
    return Figures(cpu_ms=cpu, db_ms=db, status=status, input_bytes=size)


def parse_ms(r: Req) -> float | None:
    """CPU of only decoding this request's input (Django's QueryDict for a form or a query
    string, orjson for JSON; gzip included): the floor any endpoint pays for it."""
    from django.http import QueryDict

    raw = r.body if r.method == "POST" else urlsplit(r.path).query.encode()

    def decode() -> Any:
        if r.method == "GET" or r.content_type != JSON:
            return QueryDict(raw)
        text = gzip.decompress(raw) if r.headers.get("Content-Encoding") == "gzip" else raw
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # NaN: the ingest parser's slow path
            return json.loads(text)

    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        decode()
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def profile(make: Make, top: int = 12) -> list[str]:
    """Where one request of this shape spends its time: the functions with the most self
    time, then the project's own functions by cumulative time, request wrappers left out
    (cProfile inflates both)."""
    profiler = cProfile.Profile()
    profiler.runcall(send, make())
    stats = pstats.Stats(profiler, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, func), (_, calls, self_s, cum_s, _) in stats.items():
        short = path.replace(f"{ROOT}/", "").replace(".venv/lib/", "")
        project = not short.startswith(("/", "<", "{", "~", "python3", "bench/"))
        rows.append((self_s * 1000, cum_s * 1000, calls, f"{short}:{line}({func})", project))
    total = max(row[1] for row in rows)
    lines = [f"{total:.0f} ms under cProfile; self time:"]
    for self_ms, cum_ms, calls, name, _ in sorted(rows, reverse=True)[:top]:
        lines.append(f"  self {self_ms:7.1f} ms  cum {cum_ms:8.1f} ms  {calls:>8} calls  {name}")
    lines.append("project code by cumulative time:")
    ours = sorted((r for r in rows if r[4] and r[1] < 0.9 * total), key=lambda r: -r[1])
    for self_ms, cum_ms, calls, name, _ in ours[:top]:
        lines.append(f"  cum {cum_ms:8.1f} ms  self {self_ms:7.1f} ms  {calls:>8} calls  {name}")
    return lines


# --- the data -----------------------------------------------------------------------------------


@dataclass
class World:
    """Users, their clients and tokens, agents and items of the bench database."""

    users: dict[str, Any]
    clients: dict[str, Any]
    tokens: dict[str, str]
    agents: dict[str, Any]
    diff_items: dict[str, tuple[int, str]]  # shape: (item id, the edited text)
    md_worst: str
    ready_batch: int
    body_limit: int
    ingest_limit: int
    ingest_items: int
    max_fields: int
    n_feedback: int
    counter: list[int] = field(default_factory=lambda: [0])

    def next(self) -> int:
        self.counter[0] += 1
        return self.counter[0]

    def api(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def page(self, who: str, method: str, path: Any, body: Any = b"", **kw: Any) -> Make:
        return req(self.clients[who], method, path, body, **kw)

    def call(self, who: str, method: str, path: Any, body: Any = b"", **kw: Any) -> Make:
        """An API request with `who`'s token (JSON body)."""
        return req(self.clients["anon"], method, path, body, JSON, self.api(who), **kw)


def items_of(agent: Any) -> Any:
    from reviews.models import ReviewItem

    return ReviewItem.objects.filter(agent=agent)


def _records(agent: str, domain: str, n: int, prefix: str, **fields: Any) -> list[dict]:
    base = {"agent": agent, "domain": domain, "confidence": 0.1, "input": "Where is my parcel?"}
    return [
        {"external_id": f"{prefix}-{i}", **base, "output": f"It left today ({i}).", **fields}
        for i in range(n)
    ]


def _ingest(records: list[dict]) -> None:
    from ingest.services import interactions_ingest

    for start in range(0, len(records), 5000):
        chunk = records[start : start + 5000]
        result = interactions_ingest(records=enumerate(chunk), source="api")
        assert not result.errors, result.errors[:3]


def seed(*, n_support: int, n_max: int, n_plain: int, n_feedback: int, quick: bool) -> World:
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django.utils import timezone

    from accounts.models import ReviewerProfile, Role
    from accounts.services import token_create
    from agents.models import Agent
    from core.markdown import render_markdown
    from kpis.services import kpis_recompute
    from retraining import services as exports
    from reviews import services as reviews

    assert settings.INGEST_MAX_TEXT_CHARS == TEXT, "the shapes are sized for 20,000 characters"

    def cost(text: str) -> float:
        started = time.process_time()
        render_markdown(text)
        return time.process_time() - started

    shapes = _sibling("markdown").shapes(TEXT)
    md_worst = max((text for name, text in shapes.items() if "@" in name), key=cost)

    users: dict[str, Any] = {}
    for name, roles, domains in [
        ("plain", [Role.REVIEWER], ["plain"]),
        ("max", [Role.REVIEWER], ["max"]),
        ("seed", [Role.REVIEWER], ["support"]),
        ("admin", [Role.ADMIN], None),
        ("ml", [Role.ML], None),
        ("agent", [Role.AGENT], None),
        ("tokens", [], None),
        ("login", [], None),
        ("pw", [], None),
    ]:
        password = PASSWORD if name in ("login", "pw") else None  # PBKDF2 only where needed
        user = User.objects.create_user(f"ft-{name}", f"ft-{name}@example.com", password)
        for role in roles:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        if domains is not None:
            ReviewerProfile.objects.create(user=user, domains=domains)
        users[name] = user
    clients = {"anon": Client(raise_request_exception=False)}
    for name, user in users.items():
        clients[name] = Client(raise_request_exception=False)
        clients[name].force_login(user)
    tokens = {
        n: token_create(user=users[n], name="bench")[1] for n in ("plain", "admin", "ml", "agent")
    }

    agents = {}
    for slug, domain, guidelines in [
        ("ft-bot", "support", PROSE),
        ("ft-plain", "plain", "Be kind."),
        ("ft-max", "max", md_worst),
        ("ft-diff", "diff", ""),
        ("ft-policy", "policy", ""),
        ("ft-ingest", "ingest", ""),
        ("ft-feedback", "fb", ""),
        ("ft-otlp", "otlp", ""),
    ]:
        agents[slug] = Agent.objects.create(
            slug=slug, name=slug, kind="chat", domain=domain, audit_rate=0, guidelines=guidelines
        )

    now = timezone.now()
    _ingest(_records("ft-plain", "plain", n_plain, "plain"))
    support = _records("ft-bot", "support", n_support, "support")
    for i, record in enumerate(support):  # a bulk item: its share of a full ingest body
        record.update(
            input=(PROSE * 25)[:2000],
            output=(PROSE * 40)[:3000],
            agent_version=f"v{i % 2 + 1}",
            context=[{"role": "user", "content": PROSE}] * 10,
            metadata={f"key{k}": k for k in range(20)},
            created_at=(now - timedelta(days=i * 360 // max(n_support, 1))).isoformat(),
        )
    _ingest(support)
    biggest = {
        "input": (COMBINING + RTL_ZW) * (TEXT // 9),
        "output": md_worst,
        "context": [{"role": "user", "content": TOKENS * (TEXT // 2)}] * (20 if quick else 200),
        "metadata": {f"k{k:04d}": 0 for k in range(1600)},  # MAX_METADATA_BYTES: 16 KiB
    }
    _ingest(_records("ft-max", "max", n_max, "max", **biggest))
    diff_items = {}
    for name, (original, edited) in _sibling("diff").shapes(TEXT).items():
        _ingest(_records("ft-diff", "diff", 1, f"diff-{name}", output=original))
        diff_items[name] = (items_of(agents["ft-diff"]).latest("pk").pk, edited)
    _ingest(_records("ft-feedback", "fb", n_feedback, "fb", confidence=0.99))

    # Decisions (training pairs, KPI rows) on the bot's items, the KPI snapshots, a batch.
    seeder = users["seed"]
    for i in range(min(40, n_support // 2)):
        item = reviews.item_claim(reviewer=seeder)
        assert item is not None
        decision = reviews.decision_validate(
            item=item, verdict="correct" if i % 2 else "approve", corrected_output=f"Better {i}."
        )
        reviews.review_submit(item=item, reviewer=seeder, decision=decision)
    kpis_recompute(agent_ids=[agents["ft-bot"].pk], since=(now - timedelta(days=370)).date())
    batch = exports.batch_request(
        agent=agents["ft-bot"], format="jsonl", actor=users["ml"], enqueue=False
    )
    exports.batch_build(batch_id=batch.pk)
    return World(
        users=users,
        clients=clients,
        tokens=tokens,
        agents=agents,
        diff_items=diff_items,
        md_worst=md_worst,
        ready_batch=batch.pk,
        body_limit=settings.MAX_BODY_BYTES,
        ingest_limit=settings.INGEST_MAX_BODY_BYTES,
        max_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        ingest_items=250 if quick else settings.INGEST_MAX_ITEMS_PER_REQUEST,
        n_feedback=n_feedback,
    )


# --- state kept equal between repeats (reset outside the timed span) ------------------------------


def held_item(w: World, who: str) -> Any:
    """The item `who` holds (claimed now if none): each decision starts from a held item."""
    from reviews import selectors, services

    user = w.users[who]
    item = selectors.item_held_by(user) or services.item_claim(reviewer=user)
    assert item is not None, f"no item left for {who}: seed more"
    return item


def release_held(w: World, who: str) -> None:
    from reviews import selectors, services

    item = selectors.item_held_by(w.users[who])
    if item is not None:
        services.item_release(item=item, actor=None)


def wipe_agent(w: World, slug: str, *, interactions: bool) -> None:
    """Deletes the rows ingest made for one of the bench's agents, in SQL (no cascade walk)."""
    from django.db import connection

    from agents.models import FeedbackEvent, Interaction
    from reviews.models import ReviewItem

    models = [FeedbackEvent, ReviewItem, *([Interaction] if interactions else [])]
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            cursor.execute(f"DELETE FROM {table} WHERE agent_id = %s", [w.agents[slug].pk])


def drop_active_batches(w: World) -> None:
    from retraining.models import ExportBatch

    ExportBatch.objects.filter(created_by=w.users["ml"], status__in=["queued", "building"]).delete()


# --- the endpoints ------------------------------------------------------------------------------


def api_endpoints(w: World) -> list[Endpoint]:
    from reviews.models import ErrorCategory

    lim = w.body_limit
    today = time.strftime("%Y-%m-%d", time.gmtime())
    year_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 365 * 86400))
    plain_item = items_of(w.agents["ft-plain"]).order_by("-pk").first()
    assign = f"/api/v1/items/{plain_item.pk}/assign"
    trained = f"/api/v1/exports/{w.ready_batch}/trained"

    def claim(body: bytes) -> Make:
        return w.call(
            "plain", "POST", "/api/v1/queue/claim", body, prep=lambda: release_held(w, "plain")
        )

    def decide(body: Callable[[Any], bytes]) -> Make:
        item: list[Any] = []

        def path() -> str:
            item[:] = [held_item(w, "plain")]
            return f"/api/v1/items/{item[0].pk}/decision"

        return w.call("plain", "POST", path, lambda: body(item[0]))

    def export(body: bytes) -> Make:
        return w.call("ml", "POST", "/api/v1/exports", body, prep=lambda: drop_active_batches(w))

    correct = {"verdict": "correct", "corrected_output": ("a b " * TEXT)[:TEXT]}
    categories: list[Any] = [*ErrorCategory.objects.values_list("slug", flat=True), None]
    versions = ["v1", *(f"v{i:03d}" + NO_SPACE * 96 for i in range(99))]
    max_filters = {
        "date_from": "2000-01-01", "date_to": today, "sources": ["approve", "correct"],
        "error_categories": categories, "agent_versions": versions, "min_reviews": 1,
        "system_prompt": (COMBINING * 5000)[:TEXT],
    }  # fmt: skip
    nested = b'{"agent": "ft-bot", "format": "jsonl", "filters": {"agent_versions": ' + b"[" * 30

    def deep(text: str) -> bytes:  # 30 nested arrays (JSON_MAX_DEPTH is 32) around a string
        return nested + orjson.dumps(text) + b"]" * 30 + b"}}"

    kpis = [("agent", "ft-bot"), ("from", year_ago), ("to", today)]

    def get(who: str, path: str) -> Make:
        return w.call(who, "GET", path)

    def post(who: str, path: str, body: bytes) -> Make:
        return w.call(who, "POST", path, body)

    return [
        Endpoint("POST /api/v1/queue/claim", claim(b"{}"), {
            "domain_1mib_combining": claim(json_fill(lambda t: {"domain": t}, COMBINING, lim)),
            "agent_1mib_unknown_echoed": claim(json_fill(lambda t: {"agent": t}, NO_SPACE, lim)),
            "body_65k_unknown_keys": claim(json_keys({}, lim)),
        }),
        Endpoint("POST /api/v1/items/{id}/decision", decide(lambda i: b'{"verdict": "approve"}'), {
            "correct_20k_alternating_notes_5k_rtl": decide(lambda i: orjson.dumps(
                {**correct, "notes": RTL_ZW * 1000, "version": i.version})),
            "corrected_1mib_tokens": decide(lambda i: json_fill(
                lambda t: {"verdict": "correct", "corrected_output": t}, TOKENS, lim)),
            "notes_1mib_rtl": decide(lambda i: json_fill(
                lambda t: {"verdict": "approve", "notes": t}, RTL_ZW, lim)),
            "error_category_1mib": decide(lambda i: json_fill(
                lambda t: {"verdict": "approve", "error_category": t}, NO_SPACE, lim)),
            "approve_65k_unknown_keys": decide(lambda i: json_keys({"verdict": "approve"}, lim)),
        }),
        Endpoint("POST /api/v1/items/{id}/assign", post(
                "admin", assign, b'{"username": "ft-plain"}'), {
            "username_1mib_rtl_echoed": post("admin", assign, json_fill(
                lambda t: {"username": t}, RTL_ZW, lim)),
            "65k_unknown_keys": post("admin", assign, json_keys({"username": "ft-plain"}, lim)),
        }),
        Endpoint("GET /api/v1/items", get("admin", "/api/v1/items?limit=1"), {
            "limit_500_bulk_size_items": get("admin", "/api/v1/items?limit=500&domain=support"),
            "limit_500_max_size_items": get("admin", "/api/v1/items?limit=500&domain=max"),
            "filters_4k_combining": get("admin", query_fill("/api/v1/items", [
                ("limit", 500), ("assigned_to", RTL_ZW * 40)], "domain", COMBINING)),
        }, note="as many max-size items (4 MB of context each) as the bench holds"),
        Endpoint("GET /api/v1/kpis", get("admin", query(
                "/api/v1/kpis", [*kpis[:1], ("from", today), ("to", today)])), {
            "366_days_version_v1": get("admin", query("/api/v1/kpis", [*kpis, ("version", "v1")])),
            "366_days_version_4k_combining": get("admin", query_fill(
                "/api/v1/kpis", kpis, "version", COMBINING)),
            "agent_4k_unknown_echoed": get("admin", query_fill(
                "/api/v1/kpis", kpis[1:], "agent", NO_SPACE)),
        }),
        Endpoint("POST /api/v1/exports", export(b'{"agent": "ft-bot", "format": "csv"}'), {
            "valid_max_filters_openai_prompt_20k": export(orjson.dumps(
                {"agent": "ft-bot", "format": "openai", "filters": max_filters})),
            "system_prompt_1mib_combining": export(json_fill(lambda t: {"agent": "ft-bot",
                "format": "openai", "filters": {"system_prompt": t}}, COMBINING, lim)),
            "filters_65k_unknown_keys": export(json_keys(
                {"agent": "ft-bot", "format": "jsonl", "filters": {}}, lim, "filters")),
            "agent_versions_260k_list": export(orjson.dumps({"agent": "ft-bot", "format": "jsonl",
                "filters": {"agent_versions": ["v"] * ((lim - 80) // 4)}})),
            "filters_30_deep_1mib": export(deep(TOKENS * ((lim - len(deep(""))) // 2))),
        }),
        Endpoint("GET /api/v1/exports", get("ml", "/api/v1/exports?limit=1"), {
            "limit_500": get("ml", "/api/v1/exports?limit=500"),
            "agent_4k_rtl": get("ml", query_fill(
                "/api/v1/exports", [("limit", 500)], "agent", RTL_ZW)),
        }),
        Endpoint("POST /api/v1/exports/{id}/trained", post(
                "ml", trained, b'{"agent_version": "v3"}'), {
            "agent_version_1mib_combining": post("ml", trained, json_fill(
                lambda t: {"agent_version": t}, COMBINING, lim)),
            "agent_version_100_rtl": post("ml", trained, orjson.dumps(
                {"agent_version": (RTL_ZW * 20)[:100]})),
        }),
    ]  # fmt: skip


def review_endpoints(w: World) -> list[Endpoint]:
    lim, fields = w.body_limit, w.max_fields
    htmx = {"HX-Request": "true"}
    plain_item = items_of(w.agents["ft-plain"]).order_by("pk").first()
    max_item = items_of(w.agents["ft-max"]).order_by("-pk").first()
    twenty_k = ("a b " * 5000)[:TEXT]

    def decide(who: str, body: Callable[[list], bytes], headers: dict | None = None) -> Make:
        """A decision POST on the item `who` holds (its version in the form, as the page)."""
        item: list[Any] = []

        def path() -> str:
            item[:] = [held_item(w, who)]
            return f"/review/{item[0].pk}/decide"

        return w.page(
            who, "POST", path, lambda: body([("version", item[0].version)]), headers=headers
        )

    def diff(item_id: int, body: bytes, headers: dict | None = None) -> Make:
        return w.page(
            "admin",
            "POST",
            f"/review/{item_id}/diff",
            body,
            headers=htmx if headers is None else headers,
        )

    def tokens(unit: str) -> bytes:
        return form_fill([], "corrected_output", unit, lim)

    def page(who: str, method: str, path: str, body: bytes = b"") -> Make:
        return w.page(who, method, path, body)

    def claim(body: bytes) -> Make:
        return w.page("plain", "POST", "/queue/claim", body, prep=lambda: release_held(w, "plain"))

    correct = [("verdict", "correct")]
    undo = f"/review/{plain_item.pk}/undo"
    adjudication = f"/console/adjudication/{max_item.pk}/"
    approve = decide("plain", lambda v: form([*v, ("verdict", "approve")]))
    edit = [("corrected_output", "It left yesterday.")]
    small = form(edit)
    return [
        Endpoint("POST /review/{id}/decide", approve, {
            "correct_1mib_tokens_htmx (400: screen + diff)": decide("max", lambda v: form_fill(
                [*v, *correct], "corrected_output", TOKENS, lim), htmx),
            "correct_1mib_tokens_page (400: screen + diff)": decide("max", lambda v: form_fill(
                [*v, *correct], "corrected_output", TOKENS, lim)),
            "correct_20k_alternating_htmx (next max item)": decide("max", lambda v: form(
                [*v, *correct, ("corrected_output", twenty_k)]), htmx),
            "notes_1mib_rtl_with_20k_correction_htmx (400)": decide("max", lambda v: form_fill(
                [*v, *correct, ("corrected_output", twenty_k)], "notes", RTL_ZW, lim), htmx),
            "1000_fields_htmx": decide("max", lambda v: form_fields(
                [*v, *correct], "corrected_output", lim, fields), htmx),
        }, note="the max-size reviewer: 20k Markdown-worst output, 4 MB of context an item"),
        Endpoint("POST /review/{id}/diff", diff(plain_item.pk, small), {
            **{k: diff(pk, form([("corrected_output", t)])) for k, (pk, t) in w.diff_items.items()},
            "tokens_1mib_htmx": diff(max_item.pk, tokens(TOKENS)),
            "tokens_1mib_page": diff(max_item.pk, tokens(TOKENS), {}),
            "lines_1mib_vs_many_lines": diff(w.diff_items["many_lines"][0], tokens("a\n")),
            "combining_1mib": diff(max_item.pk, tokens(COMBINING)),
            "rtl_zero_width_1mib": diff(max_item.pk, tokens(RTL_ZW)),
        }, note="the corrected text has no field limit here: only the body's"),
        Endpoint("GET /review/{id}/", page("admin", "GET", f"/review/{plain_item.pk}/"), {
            "max_item_filters_4k_combining": page("admin", "GET", query_fill(
                f"/review/{max_item.pk}/", [("agent", RTL_ZW * 30)], "domain", COMBINING)),
        }),
        Endpoint("GET /queue/", page("max", "GET", "/queue/"), {
            "1000_domain_params": page("max", "GET", query_params(
                "/queue/", "domain", "max", fields)),
            "filters_4k_rtl_combining": page("max", "GET", query_fill(
                "/queue/", [("agent", RTL_ZW * 60)], "domain", COMBINING)),
        }),
        Endpoint("POST /queue/claim", claim(b""), {
            "domain_1mib_combining": claim(form_fill([], "domain", COMBINING, lim)),
            "1000_fields": claim(form_fields([], "agent", lim, fields)),
        }),
        Endpoint("POST /review/{id}/undo", page("plain", "POST", undo), {
            "next_1mib_no_spaces": page("plain", "POST", undo, form_fill(
                [("agent", "x")], "next", NO_SPACE, lim)),
            "domain_1mib_rtl": page("plain", "POST", undo, form_fill([], "domain", RTL_ZW, lim)),
        }),
        Endpoint("POST /console/adjudication/{id}/", page("admin", "POST",
                f"/console/adjudication/{plain_item.pk}/", form([("preview", "1"), *edit])), {
            "preview_1mib_tokens": page("admin", "POST", adjudication, form_fill(
                [("preview", "1")], "corrected_output", TOKENS, lim)),
            "decide_1mib_tokens (400)": page("admin", "POST", adjudication, form_fill(
                correct, "corrected_output", TOKENS, lim)),
            "notes_1mib_rtl (400)": page("admin", "POST", adjudication, form_fill(
                [*correct, ("corrected_output", twenty_k)], "notes", RTL_ZW, lim)),
        }),
    ]  # fmt: skip


def console_endpoints(w: World) -> list[Endpoint]:
    from agents.models import Agent
    from console.forms import AgentPolicyForm

    lim, fields = w.body_limit, w.max_fields
    plain_id = items_of(w.agents["ft-plain"]).values_list("pk", flat=True).first()
    bulk = [("action", "priority"), ("scope", "selected"), ("priority", "1")]
    policy = w.agents["ft-policy"]
    reviewer = f"/console/reviewers/{w.users['plain'].pk}/"

    def policy_form(without: str = "", **changes: str) -> list[tuple[str, Any]]:
        """The agent page's form as it is filled in, `without` one field."""
        bound = AgentPolicyForm(instance=policy)
        data = []
        for name in bound.fields:
            value = bound[name].value()
            if isinstance(value, bool):
                value = "on" if value else None
            if value is not None and name != without:
                data.append((name, changes.get(name, value)))
        return data

    def reset_policy() -> None:
        Agent.objects.filter(pk=policy.pk).update(
            name="ft-policy", guidelines="", review_intents=[], review_domains=[]
        )

    def agent_edit(body: bytes) -> Make:
        return w.page("admin", "POST", f"/console/agents/{policy.slug}/", body, prep=reset_policy)

    filters = [
        ("domain", (RTL_ZW * 20)[:100]), ("reason", "low_confidence"), ("status", "pending"),
        ("min_age_hours", "0"), ("max_age_hours", "876000"), ("min_confidence", "0"),
        ("max_confidence", "1"), ("assigned", "unassigned"), ("sort", "oldest"),
        ("page", "9" * 3000),
    ]  # fmt: skip

    def get(path: str) -> Make:
        return w.page("admin", "GET", path)

    def post(path: str, body: bytes) -> Make:
        return w.page("admin", "POST", path, body)

    pool = [("domain", "plain"), ("reviewer", "ft-admin")]
    intents = [
        *policy_form("review_intents_text"),
        ("review_intents_text", distinct_ids(lim - 3000, prefix="t")),
    ]
    return [
        Endpoint("GET /console/", get("/console/"), {
            "all_filters_domain_100_rtl_page_3000_digits": get(query("/console/", filters)),
            "1000_domain_params": get(query_params("/console/", "domain", "x", fields)),
            "confidence_4k_digits": get(query_fill("/console/", [], "min_confidence", "0")),
        }),
        Endpoint("POST /console/bulk", post("/console/bulk", form([*bulk, ("ids", plain_id)])), {
            "ids_1mib_same_id": post("/console/bulk", form_fill(bulk, "ids", f"{plain_id},", lim)),
            "ids_1mib_distinct": post("/console/bulk", form(
                [*bulk, ("ids", distinct_ids(lim - 100))])),
            "ids_1mib_beyond_bigint": post("/console/bulk", form_fill(
                bulk, "ids", "9" * 20 + ",", lim)),
            "1000_ids_fields": post("/console/bulk", form(
                [*bulk, *(("ids", str(i)) for i in range(1, fields - 3))])),
            "matching_all_filters": post("/console/bulk", form(
                [("action", "priority"), ("scope", "matching"), ("priority", "1"), *filters[:-1]])),
        }),
        Endpoint("GET /console/workload/", get("/console/workload/"), {
            "sort_4k_rtl": get(query_fill(
                "/console/workload/", [("page", "9" * 100)], "sort", RTL_ZW)),
            "sort_minus_agreement": get("/console/workload/?sort=-agreement"),
        }),
        Endpoint("GET /console/audit/", get("/console/audit/"), {
            "user_action_unicode_at_max_length": get(query("/console/audit/", [
                ("user", (COMBINING * 40)[:150]), ("action", (RTL_ZW * 13)[:64]),
                ("page", "9" * 2000)])),
            "format_csv_every_event": get("/console/audit/?format=csv"),
        }, note="the CSV streams the whole audit log: it grows with the log, not the input"),
        Endpoint("POST /console/agents/{slug}/", agent_edit(form(policy_form(name="ft-p2"))), {
            "guidelines_1mib_tokens": agent_edit(form_fill(
                policy_form("guidelines"), "guidelines", TOKENS, lim)),
            "review_intents_1mib_distinct_tags": agent_edit(form(intents)),
            "review_domains_1mib_one_long_tag": agent_edit(form_fill(
                policy_form("review_domains_text"), "review_domains_text", COMBINING, lim)),
        }),
        Endpoint("GET /console/pools/", get("/console/pools/"), {
            "domain_4k_combining (400)": get(query_fill(
                "/console/pools/", [], "domain", COMBINING)),
        }),
        Endpoint("GET /console/pools/{domain}/", get("/console/pools/plain/"), {
            "domain_4k_path_rtl": get(path_fill("/console/pools/", RTL_ZW)),
        }),
        Endpoint("POST /console/pools/add", post("/console/pools/add", form(pool)), {
            "domain_1mib_combining": post("/console/pools/add", form_fill(
                [("reviewer", "ft-max")], "domain", COMBINING, lim)),
            "reviewer_1mib_rtl": post("/console/pools/add", form_fill(
                pool[:1], "reviewer", RTL_ZW, lim)),
        }),
        Endpoint("POST /console/pools/remove", post("/console/pools/remove", form(pool)), {
            "reviewer_1mib_combining": post("/console/pools/remove", form_fill(
                pool[:1], "reviewer", COMBINING, lim)),
        }),
        Endpoint("POST /console/reviewers/{id}/", post(reviewer, form(
                [("domains", "plain"), ("daily_capacity", "200"), ("active", "on")])), {
            "1000_unknown_domains": post(reviewer, form_fields(
                [("daily_capacity", "200")], "domains", lim, fields)),
            "daily_capacity_1mib_digits": post(reviewer, form_fill(
                [("domains", "plain")], "daily_capacity", "9", lim)),
        }),
    ]  # fmt: skip


def page_endpoints(w: World) -> list[Endpoint]:
    from axes.utils import reset as axes_reset
    from django.test import Client

    from retraining.forms import NO_CATEGORY
    from reviews.models import ErrorCategory

    lim, fields = w.body_limit, w.max_fields
    categories = [*ErrorCategory.objects.values_list("slug", flat=True), NO_CATEGORY]
    pairs = [("agent", "ft-bot"), ("dataset", "pairs"), ("format", "csv"), ("min_reviews", "1")]
    openai = [*pairs[:2], ("format", "openai"), ("min_reviews", "1")]
    versions = ",".join(["v1", *(f"v{i:03d}" + NO_SPACE * 96 for i in range(99))])
    today = time.strftime("%Y-%m-%d", time.gmtime())
    year_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 365 * 86400))
    trained = f"/exports/{w.ready_batch}/trained/"
    span = [("agent", "ft-bot"), ("start", year_ago), ("end", today)]

    def build(body: bytes) -> Make:
        return w.page("ml", "POST", "/exports/build/", body, prep=lambda: drop_active_batches(w))

    def get(who: str, path: str) -> Make:
        return w.page(who, "GET", path)

    def post(who: str, path: str, body: bytes) -> Make:
        return w.page(who, "POST", path, body)

    def kpi(path: str) -> Endpoint:
        return Endpoint(f"GET {path}", get("admin", path), {
            "366_days_version_v1": get("admin", query(path, [*span, ("version", "v1")])),
            "366_days_version_4k_combining": get("admin", query_fill(
                path, span, "version", COMBINING)),
            "1000_agent_params": get("admin", query_params(path, "agent", "ft-bot", fields)),
        })  # fmt: skip

    def login(body: bytes) -> Make:
        def make() -> Req:
            axes_reset()  # no lockout page instead of the work: the attempts start from zero
            return Req(Client(raise_request_exception=False), "POST", "/accounts/login/", body)

        return make

    def reset_password() -> None:
        user = w.users["pw"]
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        w.clients["pw"].force_login(user)

    def password_change(body: bytes) -> Make:
        return w.page("pw", "POST", "/accounts/password_change/", body, prep=reset_password)

    def tokens(body: bytes) -> Make:
        def prep() -> None:
            w.users["tokens"].api_tokens.all().delete()

        return w.page("tokens", "POST", "/accounts/tokens/", body, prep=prep)

    slugs = " ".join(f"a{i:x}" for i in range(lim // 7))[: lim - 200]
    new = "Xq7!vB2#rT9w-long-enough"
    changed = [("old_password", PASSWORD), ("new_password1", new), ("new_password2", new)]
    reset = "/accounts/password_reset/"
    choices = [("sources", "approve"), ("sources", "correct")]
    choices += [("error_categories", c) for c in categories]
    long_new = "Zq9x" * (lim // 9)
    return [
        Endpoint("POST /exports/build/", build(form(pairs)), {
            "valid_max_openai_prompt_20k_100_versions_all_categories": build(form([
                *openai, ("system_prompt", (COMBINING * 5000)[:TEXT]), ("agent_versions", versions),
                *choices, ("date_from", "2000-01-01"), ("date_to", today)])),
            "system_prompt_1mib_combining (400: page)": build(form_fill(
                openai, "system_prompt", COMBINING, lim)),
            "agent_versions_1mib_commas (400: page)": build(form_fill(
                pairs, "agent_versions", "v,", lim)),
            "1000_error_category_values (400: page)": build(form_fields(
                pairs, "error_categories", lim, fields)),
        }),
        Endpoint("GET /exports/", get("ml", "/exports/"), {
            "agent_4k_rtl_page_1000_digits": get("ml", query_fill(
                "/exports/", [("page", "9" * 1000)], "agent", RTL_ZW)),
        }),
        Endpoint("POST /exports/{id}/trained/", post(
                "ml", trained, form([("agent_version", "v3")])), {
            "agent_version_1mib_combining": post("ml", trained, form_fill(
                [], "agent_version", COMBINING, lim)),
        }),
        kpi("/kpis/"), kpi("/kpis/export.csv"), kpi("/kpis/calibration/"), kpi("/kpis/agreement/"),
        Endpoint("POST /accounts/tokens/", tokens(form([("name", "ci")])), {
            "agents_1mib_distinct_slugs": tokens(form([("name", "ci"), ("agents", slugs)])),
            "agents_1mib_last_slug_bad": tokens(form(
                [("name", "ci"), ("agents", slugs[:-20] + " NOT-A-SLUG")])),
            "name_1mib_rtl": tokens(form_fill([], "name", RTL_ZW, lim)),
        }),
        Endpoint("POST /accounts/login/", login(form(
                [("username", "ft-login"), ("password", PASSWORD)])), {
            "password_1mib_wrong": login(form_fill(
                [("username", "ft-login")], "password", NO_SPACE, lim)),
            "username_150_combining_password_1mib_rtl": login(form_fill(
                [("username", (COMBINING * 40)[:150])], "password", RTL_ZW, lim)),
            "username_1mib_combining": login(form_fill(
                [("password", "x")], "username", COMBINING, lim)),
        }, note="PBKDF2 (Django's default hasher) is most of every attempt, by design"),
        Endpoint("POST /accounts/password_reset/", post("anon", reset, form(
                [("email", "ft-login@example.com")])), {
            "email_1mib": post("anon", reset, form_fill([], "email", TOKENS, lim)),
            "email_254_idn_combining": post("anon", reset, form(
                [("email", "a@" + "e\u0301" * 60 + "." + "b" * 60 + ".com")])),
        }),
        Endpoint("POST /accounts/password_change/", password_change(form(changed)), {
            "new_passwords_512k_each": password_change(form(
                [changed[0], ("new_password1", long_new), ("new_password2", long_new)])),
            "old_password_1mib_wrong": password_change(form_fill(
                changed[1:], "old_password", NO_SPACE, lim)),
        }, note="two PBKDF2 runs (the old password, the new one) by design"),
    ]  # fmt: skip


def ingest_endpoints(w: World) -> list[Endpoint]:
    from django.conf import settings

    n, limit = w.ingest_items, w.ingest_limit
    # Bytes per item of a full body at the item limit (--quick sends fewer such items).
    budget = (limit - 2) // settings.INGEST_MAX_ITEMS_PER_REQUEST - 1

    def wipe() -> None:
        wipe_agent(w, "ft-ingest", interactions=True)

    def base(p: str, i: int) -> dict:
        return {"external_id": f"{p}-{i}", "agent": "ft-ingest", "domain": "ingest",
                "confidence": 0.1, "input": "", "output": ""}  # fmt: skip

    def fill(room: int, unit: str) -> str:
        return (unit * max(room // (len(orjson.dumps(unit)) - 2), 0))[:TEXT]

    def texts(unit: str) -> Callable[[str, int], dict]:
        def item(p: str, i: int) -> dict:
            out = {**base(p, i), "input": fill((budget - 200) // 2, unit)}
            return {**out, "output": fill(budget - len(orjson.dumps(out)) - 8, unit)}

        return item

    def metadata_keys(p: str, i: int) -> dict:
        room = min(budget - 200, 16_000)  # MAX_METADATA_BYTES
        return {**base(p, i), "metadata": {f"{k:04x}": 0 for k in range(room // 9)}}

    def deep(p: str, i: int) -> dict:  # the item is level 2, metadata 3: 31 levels in all
        leaf: list = []
        metadata: Any = leaf
        for _ in range(28):
            metadata = {"a": metadata}
        item = {**base(p, i), "metadata": metadata}
        leaf.extend([0] * ((budget - len(orjson.dumps(item)) - 4) // 2))
        return item

    def turns(p: str, i: int) -> dict:
        turn = {"role": "user", "content": ""}
        return {**base(p, i), "context": [turn] * min(200, (budget - 200) // 31)}

    def invalid(p: str, i: int) -> dict:
        return {"external_id": 7, "agent": "Not A Slug!", "agent_version": 1, "input": 5,
                "output": [], "confidence": "high", "intent": {}, "domain": 3, "resolved": "yes",
                "escalated": 2, "sentiment": "-", "turns": -1, "metadata": [],
                "created_at": "yesterday", "context": "x", "conversation_id": 9}  # fmt: skip

    def body(item: Callable[[str, int], dict], count: int = n, nan: bool = False) -> Make:
        def make() -> bytes:
            p = f"r{w.next()}"
            raw = orjson.dumps([item(p, i) for i in range(count)])
            if nan:  # one NaN sends the whole body through Python's json module
                at = raw.rindex(b'"confidence":0.1')
                raw = raw[:at] + b'"confidence":NaN' + raw[at + len(b'"confidence":0.1') :]
            assert len(raw) <= limit, (len(raw), limit)
            return raw

        return w.call("agent", "POST", "/api/v1/interactions", make, prep=wipe)

    def biggest(p: str, i: int) -> dict:
        return {**base(p, i), "input": COMBINING * (TEXT // 4), "output": w.md_worst,
                "context": [{"role": "user", "content": TOKENS * (TEXT // 2)}] * 200,
                "metadata": {f"k{k:04d}": 0 for k in range(1600)}}  # fmt: skip

    def feedback(kind: str, ref: str, prefix: str, count: int) -> Make:
        items = [{"agent": "ft-feedback", "external_id": f"{prefix}-{i}", "kind": kind,
                  "item_ref": ref} for i in range(count)]  # fmt: skip
        return w.call("agent", "POST", "/api/v1/feedback", orjson.dumps(items),
                      prep=lambda: wipe_agent(w, "ft-feedback", interactions=False))  # fmt: skip

    fb = min(n, w.n_feedback)
    invalid_fb = [{"agent": 5, "external_id": [], "kind": "love", "item_ref": {}, "value": "x",
                   "created_at": "soon"}] * fb  # fmt: skip
    unit = COMBINING + RTL_ZW
    return [
        Endpoint("POST /api/v1/interactions", body(texts(PROSE), count=1), {
            f"{n}_items_prose (reference)": body(texts(PROSE)),
            f"{n}_items_combining_rtl": body(texts(unit)),
            f"{n}_items_no_spaces": body(texts(NO_SPACE)),
            f"{n}_items_metadata_many_keys": body(metadata_keys),
            f"{n}_items_metadata_31_deep": body(deep),
            f"{n}_items_200_tiny_turns": body(turns),
            f"{n}_items_all_fields_invalid": body(invalid),
            f"{n}_items_same_external_id": body(lambda p, i: texts(PROSE)(p, 0)),
            f"{n}_items_nan_forces_slow_json": body(texts(unit), nan=True),
            "1_item_200_turns_of_20k": body(biggest, count=1),
        }, note=f"bulk: {n:,} items in a body of at most {limit:,} bytes"),
        Endpoint("POST /api/v1/feedback", feedback("clicked", "", "fb", 1), {
            f"{fb}_thumbs_down_routed_255_char_rtl_refs": feedback(
                "thumbs_down", RTL_ZW * 51, "fb", fb),
            f"{fb}_unknown_interactions": feedback("clicked", NO_SPACE * 255, "nope", fb),
            f"{fb}_all_fields_invalid": w.call(
                "agent", "POST", "/api/v1/feedback", orjson.dumps(invalid_fb)),
        }, note=f"bulk: {fb:,} events on existing interactions"),
        otlp_endpoint(w, n, limit, budget),
    ]  # fmt: skip


def otlp_endpoint(w: World, n: int, limit: int, budget: int) -> Endpoint:
    """OTLP/HTTP JSON trace exports: n spans, or as many as fit the limit (gzip: decompressed)."""

    def kv(key: str, value: Any) -> dict:
        kind = "doubleValue" if isinstance(value, float) else "stringValue"
        return {"key": key, "value": value if isinstance(value, dict) else {kind: value}}

    def parts(role: str, text: str) -> dict:
        messages = [{"role": role, "parts": [{"type": "text", "content": text}]}]
        return {"stringValue": orjson.dumps(messages).decode()}

    genai = [
        kv("gen_ai.operation.name", "chat"), kv("gen_ai.agent.name", "ft-otlp"),
        kv("coachdesk.confidence", 0.1), kv("coachdesk.domain", "otlp"),
    ]  # fmt: skip

    def span(i: int, attributes: list[dict]) -> dict:
        return {"traceId": f"{w.next():032x}", "spanId": f"{i + 1:016x}", "name": "chat",
                "endTimeUnixNano": str(time.time_ns()), "attributes": attributes}  # fmt: skip

    def chat(question: str, answer: str) -> list[dict]:
        user, bot = parts("user", question), parts("assistant", answer)
        return [*genai, kv("gen_ai.input.messages", user), kv("gen_ai.output.messages", bot)]

    unit = COMBINING + RTL_ZW
    text = unit * ((budget - 900) // 2 // len(unit.encode()))
    one = len(orjson.dumps(kv("k0000", 1.0))) + 1
    # kvlist in kvlist, 240 deep: orjson reads 1,024 levels but writes 255, so it is spliced.
    mark = orjson.dumps({"stringValue": "@deep@"})
    nested = b'{"kvlistValue":{"values":[{"key":"k","value":' * 240 + b'{"stringValue":"x"}'
    nested += b"}]}}" * 240

    def indexed(i: int) -> dict:  # gen_ai.prompt.N.* attributes, 2 a turn
        attrs = [*genai, kv("gen_ai.completion.0.content", "ok")]
        for t in range(199):
            attrs += [kv(f"gen_ai.prompt.{t}.role", "user"), kv(f"gen_ai.prompt.{t}.content", "a")]
        return span(i, attrs[: max(4, (budget - 300) // 60)])

    many = [kv(f"k{k:04x}", 1.0) for k in range((budget - 200) // one)]
    deep = [*chat("hi", "ok"), kv("deep", orjson.loads(mark))]
    shapes: dict[str, Callable[[int], dict]] = {
        "genai_spans_combining_rtl": lambda i: span(i, chat(text, text)),
        "spans_many_attributes": lambda i: span(i, many),
        "spans_indexed_prompt_attributes": indexed,
        "spans_240_deep_kvlist": lambda i: span(i, deep),
        "hello_spans (reference)": lambda i: span(i, chat("hi", "ok")),
    }

    def body(make_span: Callable[[int], dict], *, gz: bool = False, count: int = n) -> Make:
        def make() -> bytes:
            spans, size = [], 0
            for i in range(count):
                raw = orjson.dumps(make_span(i))
                size += len(raw) + 1 + raw.count(mark) * (len(nested) - len(mark))
                if size > limit - 300:
                    break
                spans.append(raw)
            head = orjson.dumps({"resourceSpans": [{
                "resource": {"attributes": [kv("service.name", "ft-otlp")]},
                "scopeSpans": [{"scope": {"name": "bench"}, "spans": ["@spans@"]}]}]})  # fmt: skip
            raw = head.replace(b'"@spans@"', b",".join(spans)).replace(mark, nested)
            assert len(raw) <= limit, (len(raw), limit)
            return gzip.compress(raw, 6) if gz else raw

        def prep() -> None:
            wipe_agent(w, "ft-otlp", interactions=True)

        headers = {**w.api("agent"), **({"Content-Encoding": "gzip"} if gz else {})}
        return req(w.clients["anon"], "POST", "/api/v1/otel/v1/traces", make, JSON, headers, prep)

    return Endpoint(
        "POST /api/v1/otel/v1/traces",
        body(shapes["hello_spans (reference)"], count=1),
        {
            **{name: body(make) for name, make in shapes.items()},
            "genai_spans_gzip": body(shapes["genai_spans_combining_rtl"], gz=True),
            "spans_many_attributes_gzip": body(shapes["spans_many_attributes"], gz=True),
        },
        note=f"{n:,} spans a body, or as many as fit its limit (gzip: once decompressed)",
    )


# --- main ---------------------------------------------------------------------------------------


def _database_url(explicit: str | None) -> str:
    """--database-url, $BENCH_DATABASE_URL, $DATABASE_URL when it names a bench database, else
    coachdesk_bench_ft on the local server (the database is dropped and re-created)."""
    url = explicit or os.environ.get("BENCH_DATABASE_URL") or ""
    if not url and database_name(os.environ.get("DATABASE_URL", "")).startswith(BENCH_DB_PREFIX):
        url = os.environ["DATABASE_URL"]
    return bench_database_url(url or DEFAULT_URL)


def django_setup(url: str, media: str) -> None:
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY=BENCH_SECRET_KEY,
        DEBUG="0",
        COACHDESK_PLAIN_STATIC="1",
        COACHDESK_HTTPS="0",
        ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="config.settings",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        MEDIA_ROOT=media,
        EXPORT_TMP_DIR=str(Path(media) / ".export-tmp"),
        # Background work (export builds, KPI runs) is published as in production, not run in
        # the request: to a queue of this bench's own on REDIS_URL, else to memory.
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_TASK_DEFAULT_QUEUE=QUEUE,
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    # 4xx answers and failed logins are the point here; a 5xx is still logged. Filters, not
    # levels: Celery's Django fixup runs django.setup() again, which resets the levels.
    for name in ("django.request", "axes.handlers.database"):
        logging.getLogger(name).addFilter(lambda record: record.levelno >= logging.ERROR)
    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = None  # one backend, whose CPU is read by pid


def _drop_queue() -> None:
    """Removes this bench's Celery queue from Redis (only its own keys)."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        return
    import redis

    conn = redis.Redis.from_url(redis_url)
    keys = [*conn.scan_iter(match=f"{QUEUE}*"), *conn.scan_iter(match=f"_kombu.binding*.{QUEUE}")]
    if keys:
        conn.delete(*keys)


def run(endpoints: list[Endpoint], repeat: int, only: str) -> tuple[dict, dict]:
    figures: dict[str, dict] = {}
    profiles: dict[str, list[str]] = {}
    err(
        f"{'endpoint':34} {'worst shape':50} {'bytes':>9} {'med ms':>8} {'max ms':>8} "
        f"{'base ms':>7} {'ratio':>6} {'db ms':>7} {'parse':>6} {'code':>4}"
    )
    for ep in endpoints:
        if only and only not in ep.name:
            continue
        send(ep.baseline())  # warm: templates, imports, query plans
        base = measure(ep.baseline, repeat)
        shapes = {name: measure(make, repeat) for name, make in ep.shapes.items()}
        worst = max(shapes, key=lambda k: shapes[k].median)
        top = shapes[worst]
        row = {
            "worst_case_name": worst,
            "input_bytes": top.input_bytes,
            "cpu_ms_median": top.median,
            "cpu_ms_max": round(max(top.cpu_ms), 1),
            "baseline_cpu_ms": base.median,
            "ratio": round(top.median / base.median, 1) if base.median else None,
            "status_code": top.status,
            "db_cpu_ms_median": round(statistics.median(top.db_ms), 1) if top.db_ms else None,
            "input_parse_ms": parse_ms(ep.shapes[worst]()),
            "baseline_status_code": base.status,
            "baseline_db_cpu_ms": round(statistics.median(base.db_ms), 1) if base.db_ms else None,
            "shapes": {
                k: {
                    "cpu_ms_median": v.median,
                    "status_code": v.status,
                    "input_bytes": v.input_bytes,
                }
                for k, v in shapes.items()
            },
            **({"note": ep.note} if ep.note else {}),
        }
        figures[ep.name] = row
        db = "-" if row["db_cpu_ms_median"] is None else f"{row['db_cpu_ms_median']:.1f}"
        err(
            f"{ep.name:34} {worst[:50]:50} {top.input_bytes:>9} {top.median:>8.1f} "
            f"{row['cpu_ms_max']:>8.1f} {base.median:>7.1f} {row['ratio'] or 0:>6.1f} {db:>7} "
            f"{row['input_parse_ms']:>6.1f} {top.status:>4}"
        )
        for name, shape in shapes.items():
            if shape.status >= 500:
                err(f"    !! {name}: status {shape.status}")
        if top.median > TARGET_MS:
            profiles[ep.name] = profile(ep.shapes[worst])
    return figures, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, smaller data sets")
    parser.add_argument("--repeat", type=int, default=None, help="requests a shape (default 3)")
    parser.add_argument("--only", default="", help="only the endpoints whose name holds this")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    url = _database_url(args.database_url)
    err(f"free-text bench on {database_name(url)} ({machine_load()})")
    started = time.perf_counter()
    setup_database(url)
    err(f"migrated in {time.perf_counter() - started:.1f}s")
    django_setup(url, tempfile.mkdtemp(prefix="coachdesk-bench-ft-"))
    sizes = {
        "n_support": 520,
        "n_max": 2 * repeat + 5,
        "n_plain": 40 + 8 * repeat,
        "n_feedback": 5000,
    }
    if args.quick:
        sizes = {"n_support": 40, "n_max": 4, "n_plain": 30, "n_feedback": 250}
    world = seed(**sizes, quick=args.quick)
    err(f"data made in {time.perf_counter() - started:.1f}s")
    endpoints = [
        *api_endpoints(world),
        *review_endpoints(world),
        *console_endpoints(world),
        *page_endpoints(world),
        *ingest_endpoints(world),  # last: they add the most rows
    ]
    figures, profiles = run(endpoints, repeat, args.only)
    for name, lines in profiles.items():
        err(f"\nprofile of {name}, {figures[name]['worst_case_name']}:")
        for line in lines:
            err(f"  {line}")
    over = sorted(k for k, v in figures.items() if v["cpu_ms_median"] > TARGET_MS)
    server_errors = sorted(
        f"{name}: {shape}"
        for name, row in figures.items()
        for shape, f in row["shapes"].items()
        if f["status_code"] >= 500
    )
    err(f"\nover {TARGET_MS:.0f} ms: {', '.join(over) or 'none'}")
    err(f"5xx: {', '.join(server_errors) or 'none'}; {machine_load()}")
    _drop_queue()
    if args.drop_db:
        from django.db import connections

        connections.close_all()
        drop_database(url)
    emit_figures(
        {
            "bench": "free_text",
            "repeat": repeat,
            "quick": args.quick,
            "target_ms": TARGET_MS,
            "endpoints_n": len(figures),
            "over_target": over,
            "server_errors": server_errors,
            "endpoints": figures,
            "profiles": profiles,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    main()
