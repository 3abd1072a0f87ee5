"""OTLP ingest benchmark: GenAI chat spans sent as OTLP/HTTP trace exports (protobuf) against
the JSON ingest API fed records of the same content, in the same run.

    python bench/otlp.py [--spans N] [--batch B] [--clients C] [--workers W] [--gzip]
                         [--database-url URL] [--drop-db]

Target (issue 13): `POST /api/v1/otel/v1/traces` reaches at least half the rows/s of
`POST /api/v1/interactions` (otlp_rows_per_s / json_rows_per_s >= 0.5).

What runs, in order, on a freshly migrated bench database (`coachdesk_bench_otlp`):
1. N chat turns, each a conversation of 2 to 4 messages (the last user message the input,
   the ones before it the context, one assistant answer; texts sized like bench/ingest.py's),
   confidence uniform with 30% below the default threshold, in batches of B turns from one
   service (agent) each, as a BatchSpanProcessor sends them; not timed. Every batch is
   serialised twice before the clock starts: as an ExportTraceServiceRequest built with the
   opentelemetry.proto classes (per span a random 16-byte trace id and 8-byte span id,
   `gen_ai.input.messages` / `gen_ai.output.messages`, model, provider, conversation,
   `coachdesk.confidence` / intent / domain; one resource with service.name / .version),
   gzip-compressed with --gzip; and as the JSON array of the B ingest records those spans
   map to (external id `json:` instead of `otel:`, `metadata.source` "json");
2. gunicorn (W workers), warmed up on both endpoints; C client threads, each with its own
   connection, POST the pre-serialised bodies. The phases run JSON, OTLP, OTLP, JSON (half
   of each path's bodies a phase), so that a change in the machine's load and the growing
   table weigh on both paths alike; a path's rows/s is its N rows over the wall clock of
   its two phases;
3. in SQL: the interactions and low-confidence review items of each path against the
   expected numbers, and one stored interaction of each path against its span or record.
The last line printed is one JSON object of the figures.

Server CPU per row is not measured: `_common` has no per-worker CPU helper (bench/load.py's
sampler is tied to locust's measurement window).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from _common import (
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    gunicorn,
    machine_load,
    make_token,
    rate,
    say,
    setup_database,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_otlp"
TARGET_RATIO = 0.50
OTLP_PATH = "/api/v1/otel/v1/traces"
JSON_PATH = "/api/v1/interactions"
THRESHOLD = 0.7  # the default agent policy (agents.models.Agent): agents are created with it
LOW_SHARE = 0.30  # share of turns generated below the threshold
SEED = 20261213

AGENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "support-bot": {
        "versions": ("2026.10.2", "2026.11.1", "2026.11.2"),
        "domains": ("support", "shipping", "billing"),
        "intents": ("returns", "order-status", "delivery", "refund", "account", "complaint"),
    },
    "shop-recommender": {
        "versions": ("r-41", "r-42"),
        "domains": ("catalog",),
        "intents": ("similar-items", "upsell", "bundle", "search"),
    },
    "legal-assistant": {
        "versions": ("1.4.0", "1.5.0"),
        "domains": ("legal",),
        "intents": ("contract-terms", "gdpr", "liability", "warranty"),
    },
    "billing-bot": {
        "versions": ("b7", "b8", "b9"),
        "domains": ("billing",),
        "intents": ("invoice", "payment-failed", "vat", "subscription"),
    },
}
AGENT_WEIGHTS = (5, 3, 1, 2)
MODELS = (("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("openai", "gpt-4o", "gpt-4o"))
_VOCABULARY = (
    "the a an to of and or for with your our order orders refund refunds shipping delivery "
    "address account password invoice invoices payment card subscription plan warranty return "
    "returns policy days within item items product products customer support help please thank "
    "you we can cannot will would should could may might need want check status tracking number "
    "parcel courier store online price discount coupon code size colour color model available "
    "stock week month contract clause liability terms conditions privacy data request delete "
    "export consent legal advice jurisdiction café Größe naïve déjà résumé — → is are was were "
    "has have had been this that these those it its if then because when where which who how "
    "what why here there now today tomorrow yesterday again sorry unfortunately great sure"
)
_WORDS = _VOCABULARY.split()
_BASE_NS = int(datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()) * 1_000_000_000


# --- Data ---------------------------------------------------------------------------------------


@dataclass
class Turn:
    """One chat turn: what the span carries and the record it maps to."""

    trace_id: bytes
    span_id: bytes
    agent: str
    version: str
    conversation_id: str
    context: list[dict[str, str]]
    input: str
    output: str
    confidence: float
    intent: str
    domain: str
    provider: str
    model: str
    response_model: str
    start_ns: int
    end_ns: int

    @property
    def key(self) -> str:
        return f"{self.trace_id.hex()}:{self.span_id.hex()}"

    def record(self, prefix: str) -> dict[str, Any]:
        """The ingest record: what ingest.genai maps the span to (`prefix` "otel" for the
        span itself; "json" for the JSON API's copy, whose metadata says so)."""
        created = datetime.fromtimestamp(self.end_ns // 1_000_000 / 1000, tz=UTC)
        return {
            "external_id": f"{prefix}:{self.key}",
            "agent": self.agent,
            "agent_version": self.version,
            "conversation_id": self.conversation_id,
            "input": self.input,
            "context": self.context,
            "output": self.output,
            "confidence": self.confidence,
            "intent": self.intent,
            "domain": self.domain,
            "metadata": {
                "source": "otlp" if prefix == "otel" else prefix,
                "trace_id": self.trace_id.hex(),
                "span_id": self.span_id.hex(),
                "operation": "chat",
                "model": self.response_model,
                "provider": self.provider,
            },
            "created_at": created.isoformat().replace("+00:00", "Z"),
        }


class TurnGenerator:
    """Deterministic chat turns: input ~100-300 characters, output ~200-600, context turns
    ~40-200; confidence uniform on [lo, 1) with LOW_SHARE of it below THRESHOLD."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.low = (THRESHOLD - LOW_SHARE) / (1 - LOW_SHARE)
        self.slugs = list(AGENTS)
        self.n = 0

    def _text(self, lo: int, hi: int) -> str:
        target = self.rng.randint(lo, hi)
        words: list[str] = []
        size = 0
        while size < target:
            word = self.rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words).capitalize() + "."

    def batch(self, size: int) -> list[Turn]:
        """`size` turns from one service (agent and version), like one exporter batch."""
        rng = self.rng
        slug = rng.choices(self.slugs, AGENT_WEIGHTS)[0]
        agent = AGENTS[slug]
        version = rng.choice(agent["versions"])
        turns = []
        for _ in range(size):
            i, self.n = self.n, self.n + 1
            # 2-4 messages in all: 0-2 earlier turns (ending with the assistant's), the
            # user's question and the answer.
            earlier = rng.randint(0, 2)
            roles = ("user", "assistant")[2 - earlier :]
            provider, model, response_model = rng.choice(MODELS)
            end_ns = _BASE_NS - rng.randrange(90 * 86_400_000) * 1_000_000
            turns.append(
                Turn(
                    trace_id=rng.randbytes(16),
                    span_id=rng.randbytes(8),
                    agent=slug,
                    version=version,
                    conversation_id=f"conv-{i // 3:08d}",
                    context=[{"role": r, "content": self._text(40, 200)} for r in roles],
                    input=self._text(100, 300),
                    output=self._text(200, 600),
                    confidence=round(rng.uniform(self.low, 1.0), 4),
                    intent=rng.choice(agent["intents"]),
                    domain=rng.choice(agent["domains"]),
                    provider=provider,
                    model=model,
                    response_model=response_model,
                    start_ns=end_ns - rng.randint(300, 4000) * 1_000_000,
                    end_ns=end_ns,
                )
            )
        return turns


# --- Bodies -------------------------------------------------------------------------------------


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        any_value = AnyValue(bool_value=value)
    elif isinstance(value, int):
        any_value = AnyValue(int_value=value)
    elif isinstance(value, float):
        any_value = AnyValue(double_value=value)
    elif isinstance(value, list | tuple):
        any_value = AnyValue()
        any_value.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
    else:
        any_value = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=any_value)


def _parts(role: str, text: str, **extra: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}], **extra}


def otlp_body(turns: list[Turn]) -> bytes:
    """An ExportTraceServiceRequest of `turns` (one service) as an OTLP exporter sends it."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        _kv(k, v)
        for k, v in (
            ("service.name", turns[0].agent),
            ("service.version", turns[0].version),
            ("telemetry.sdk.language", "python"),
            ("telemetry.sdk.name", "opentelemetry"),
            ("telemetry.sdk.version", "1.45.2"),
        )
    )
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.scope.version = "2.1b0"
    for turn in turns:
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = turn.trace_id, turn.span_id
        span.name = f"chat {turn.model}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano, span.end_time_unix_nano = turn.start_ns, turn.end_ns
        span.status.code = Status.STATUS_CODE_UNSET
        messages = [_parts(m["role"], m["content"]) for m in turn.context]
        messages.append(_parts("user", turn.input))
        answer = [_parts("assistant", turn.output, finish_reason="stop")]
        span.attributes.extend(
            _kv(k, v)
            for k, v in (
                ("gen_ai.operation.name", "chat"),
                ("gen_ai.provider.name", turn.provider),
                ("gen_ai.request.model", turn.model),
                ("gen_ai.response.model", turn.response_model),
                ("gen_ai.response.id", f"chatcmpl-{turn.span_id.hex()}"),
                ("gen_ai.response.finish_reasons", ["stop"]),
                ("gen_ai.conversation.id", turn.conversation_id),
                ("gen_ai.usage.input_tokens", len(orjson.dumps(messages)) // 4),
                ("gen_ai.usage.output_tokens", len(turn.output) // 4),
                ("server.address", "api.openai.com"),
                ("gen_ai.input.messages", orjson.dumps(messages).decode()),
                ("gen_ai.output.messages", orjson.dumps(answer).decode()),
                ("coachdesk.confidence", turn.confidence),
                ("coachdesk.intent", turn.intent),
                ("coachdesk.domain", turn.domain),
            )
        )
    return request.SerializeToString()


def json_body(turns: list[Turn]) -> bytes:
    return orjson.dumps([turn.record("json") for turn in turns])


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """Where a path's bodies go and how its answer says what was not stored (None: all)."""

    name: str
    path: str
    headers: dict[str, str]
    problem: Callable[[bytes], str | None]


def _json_problem(data: bytes) -> str | None:
    answer = orjson.loads(data)
    if answer["errors"] or answer["duplicates"]:
        return f"duplicates {answer['duplicates']}, errors {answer['errors'][:3]}"
    return None


def _otlp_problem(data: bytes) -> str | None:
    answer = ExportTraceServiceResponse.FromString(data)
    if answer.partial_success.rejected_spans or answer.partial_success.error_message:
        return (
            f"rejected {answer.partial_success.rejected_spans}: "
            f"{answer.partial_success.error_message[:500]}"
        )
    return None


def endpoints(token: str, gzipped: bool) -> tuple[Endpoint, Endpoint]:
    auth = {"Authorization": f"Bearer {token}"}
    otlp_headers = {**auth, "Content-Type": "application/x-protobuf"}
    if gzipped:
        otlp_headers["Content-Encoding"] = "gzip"
    return (
        Endpoint("OTLP", OTLP_PATH, otlp_headers, _otlp_problem),
        Endpoint("JSON", JSON_PATH, {**auth, "Content-Type": "application/json"}, _json_problem),
    )


def post(conn: http.client.HTTPConnection, endpoint: Endpoint, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", endpoint.path, body=body, headers=endpoint.headers)
    response = conn.getresponse()
    return response.status, response.read()


def http_send(port: int, endpoint: Endpoint, bodies: list[bytes], clients: int) -> dict[str, Any]:
    """POSTs every body from `clients` threads (each with its own connection); wall clock from
    the first request to the last response, and each request's latency."""
    work: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while not failures:
                try:
                    body = work.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                status, data = post(conn, endpoint, body)
                elapsed = time.perf_counter() - started
                problem = f"HTTP {status}: {data[:500]!r}" if status != 200 else None
                problem = problem or endpoint.problem(data)
                if problem:
                    failures.append(problem)
                    return
                latencies.append(elapsed)  # list.append is atomic
        except Exception as exc:  # reported by the main thread
            failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{endpoint.name} ingest failed: {failures[0]}")
    return {"seconds": seconds, "latencies": latencies}


def warm_up(port: int, endpoint: Endpoint, body: bytes, times: int) -> None:
    """Imports, database connections and the token of every worker, before the clock runs."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(times):
            status, data = post(conn, endpoint, body)
            if status != 200:
                raise SystemExit(f"warm-up POST {endpoint.path} answered {status}: {data[:300]!r}")
    finally:
        conn.close()


def percentile_ms(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 1)


# --- Checks -------------------------------------------------------------------------------------


def stored_counts(url: str) -> dict[str, tuple[int, int]]:
    """Per external-id prefix ("otel", "json"): (interactions, low-confidence review items)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT split_part(i.external_id, ':', 1), count(*),"
            " count(r.id) FILTER (WHERE r.reason = 'low_confidence')"
            " FROM reviews_interaction i LEFT JOIN reviews_reviewitem r ON r.interaction_id = i.id"
            " GROUP BY 1"
        ).fetchall()
    return {prefix: (n, low) for prefix, n, low in rows}


def spot_check(url: str, turn: Turn, prefix: str) -> str | None:
    """The stored interaction of `turn` sent as `prefix` differs from what was sent: how."""
    rec = turn.record(prefix)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT i.agent_version, i.conversation_id, i.input, i.context, i.output,"
            " i.confidence, i.intent, i.domain, i.metadata, i.created_at"
            " FROM reviews_interaction i JOIN reviews_agent a ON a.id = i.agent_id"
            " WHERE a.slug = %s AND i.external_id = %s",
            (rec["agent"], rec["external_id"]),
        ).fetchone()
    if row is None:
        return f"{rec['external_id']} is not stored"
    expected = (
        rec["agent_version"],
        rec["conversation_id"],
        rec["input"],
        rec["context"],
        rec["output"],
        rec["confidence"],
        rec["intent"],
        rec["domain"],
        rec["metadata"],
        datetime.fromisoformat(rec["created_at"]),
    )
    return None if tuple(row) == expected else f"stored {tuple(row)}\nsent   {expected}"


# --- Main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=50_000, help="chat spans (and JSON records)")
    parser.add_argument("--batch", type=int, default=512, help="spans (records) per request")
    parser.add_argument("--clients", type=int, default=2, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--gzip", action="store_true", help="gzip the OTLP bodies")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        f"default $BENCH_DATABASE_URL or {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.spans < 1 or args.batch < 1 or args.clients < 1 or args.workers < 1:
        parser.error("--spans, --batch, --clients and --workers must be positive")
    n = args.spans
    url = bench_database_url(
        args.database_url or os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL
    )

    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-otlp-"))
    try:
        say(
            f"otlp bench: spans={n:,} batch={args.batch} clients={args.clients} "
            f"workers={args.workers} gzip={'on' if args.gzip else 'off'} db={database_name(url)}"
        )
        load_start = machine_load()
        say(load_start)
        started = time.perf_counter()
        setup_database(url)
        say(f"database re-created and migrated in {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        generator = TurnGenerator(args.seed)
        sizes = [len(b) for b in itertools.batched(range(n), args.batch)]
        batches = [generator.batch(size) for size in sizes]
        low_n = sum(t.confidence < THRESHOLD for batch in batches for t in batch)
        otlp_bodies = [otlp_body(batch) for batch in batches]
        plain_bytes = sum(map(len, otlp_bodies))
        if args.gzip:
            otlp_bodies = [gzip.compress(body) for body in otlp_bodies]
        json_bodies = [json_body(batch) for batch in batches]
        first = batches[0][0]
        del batches
        otlp_bytes, json_bytes = sum(map(len, otlp_bodies)), sum(map(len, json_bodies))
        say(
            f"generated {n:,} turns ({low_n / n:.1%} below {THRESHOLD}) in {len(sizes)} batches"
            f" and serialised them in {time.perf_counter() - started:.1f}s: OTLP "
            f"{otlp_bytes / 1e6:,.1f} MB"
            + (f" gzip ({plain_bytes / 1e6:,.1f} MB plain)" if args.gzip else "")
            + f", JSON {json_bytes / 1e6:,.1f} MB"
        )

        token = make_token(url)
        otlp, api = endpoints(token, args.gzip)
        empty_otlp = gzip.compress(b"") if args.gzip else b""  # an export without spans
        half = (len(sizes) + 1) // 2
        # JSON, OTLP, OTLP, JSON: drift in load or table size weighs on both paths alike.
        phases = [
            (api, json_bodies[:half]),
            (otlp, otlp_bodies[:half]),
            (otlp, otlp_bodies[half:]),
            (api, json_bodies[half:]),
        ]
        timing: dict[str, dict[str, Any]] = {
            e.name: {"seconds": 0.0, "latencies": []} for e in (otlp, api)
        }
        with gunicorn(url, workers=args.workers, workdir=workdir) as port:
            warm_up(port, api, b"[]", 2 * args.workers)
            warm_up(port, otlp, empty_otlp, 2 * args.workers)
            for endpoint, bodies in phases:
                if not bodies:
                    continue
                checkpoint(url)
                figures = http_send(port, endpoint, bodies, args.clients)
                timing[endpoint.name]["seconds"] += figures["seconds"]
                timing[endpoint.name]["latencies"] += figures["latencies"]
                say(f"  {endpoint.name} phase: {len(bodies)} batches in {figures['seconds']:.2f}s")

        lines = {}
        for name, t in timing.items():
            t["rows_per_s"] = rate(n, t["seconds"])
            t["p50_ms"] = percentile_ms(t["latencies"], 0.50)
            t["p95_ms"] = percentile_ms(t["latencies"], 0.95)
            lines[name] = (
                f"{name}: {n:,} rows in {len(sizes)} batches of {args.batch:,} from "
                f"{args.clients} clients to {args.workers} workers in {t['seconds']:.2f}s = "
                f"{t['rows_per_s']:,.0f} rows/s (batch p50 {t['p50_ms']} ms, "
                f"p95 {t['p95_ms']} ms)"
            )
        say(lines["OTLP"] + (" [gzip]" if args.gzip else ""))
        say(lines["JSON"])
        otlp_rps, json_rps = timing["OTLP"]["rows_per_s"], timing["JSON"]["rows_per_s"]
        ratio = round(otlp_rps / json_rps, 3) if json_rps else 0.0

        counts = stored_counts(url)
        otlp_stored, otlp_low = counts.get("otel", (0, 0))
        json_stored, json_low = counts.get("json", (0, 0))
        otlp_diff, json_diff = spot_check(url, first, "otel"), spot_check(url, first, "json")
        checks = [
            (otlp_stored == n, f"OTLP interactions stored {otlp_stored:,} (expected {n:,})"),
            (json_stored == n, f"JSON interactions stored {json_stored:,} (expected {n:,})"),
            (
                otlp_low == json_low == low_n,
                f"low_confidence items OTLP {otlp_low:,}, JSON {json_low:,} (expected {low_n:,})",
            ),
            (
                sum(c for c, _ in counts.values()) == 2 * n,
                f"interactions in all {sum(c for c, _ in counts.values()):,}",
            ),
            (otlp_diff is None, f"OTLP spot check otel:{first.key} {otlp_diff or 'as sent'}"),
            (json_diff is None, f"JSON spot check json:{first.key} {json_diff or 'as sent'}"),
        ]

        load_end = machine_load()
        say(load_end)
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        checks_ok = all(ok for ok, _ in checks)
        say(
            f"ratio OTLP / JSON {ratio:.2f} (target >= {TARGET_RATIO:.2f}): "
            f"{otlp_rps:,.0f} vs {json_rps:,.0f} rows/s"
        )
        emit_figures(
            {
                "bench": "otlp",
                "spans": n,
                "batch": args.batch,
                "clients": args.clients,
                "workers": args.workers,
                "gzip": args.gzip,
                "otlp_rows_per_s": otlp_rps,
                "json_rows_per_s": json_rps,
                "ratio": ratio,
                "otlp_seconds": round(timing["OTLP"]["seconds"], 2),
                "json_seconds": round(timing["JSON"]["seconds"], 2),
                "otlp_p50_ms": timing["OTLP"]["p50_ms"],
                "otlp_p95_ms": timing["OTLP"]["p95_ms"],
                "json_p50_ms": timing["JSON"]["p50_ms"],
                "json_p95_ms": timing["JSON"]["p95_ms"],
                "otlp_mb": round(otlp_bytes / 1e6, 1),
                "json_mb": round(json_bytes / 1e6, 1),
                "otlp_stored": otlp_stored,
                "json_stored": json_stored,
                "low_confidence": otlp_low,
                "low_confidence_expected": low_n,
                "machine_load_start": load_start,
                "machine_load_end": load_end,
                "checks_ok": checks_ok,
                "meets_target": ratio >= TARGET_RATIO,
            }
        )
        return 0 if checks_ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
