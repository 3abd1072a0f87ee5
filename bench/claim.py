"""Claim benchmark: 8 reviewers claiming concurrently through the project's `item_claim`,
beside the raw single-statement SQL claim, on the same queue in the same run; then the
review screen's server time with N interactions in the database.

    python bench/claim.py [--n 1000000] [--pending 200000] [--claims 2000] [--workers 8]

Targets (issue 3, raised by issue 18): `item_claim` at least 80% of the throughput of its
own statement sent raw through psycopg ("statement": the same SQL, audit event and "not
reviewed by me" check included), p99 under 25 ms; review screen server time p95 under 50 ms
with 1,000,000 interactions. Printed beside them, for context: the least a claim can be, one
UPDATE of the first free row ("raw", `ratio_to_minimal_update`).

"Cold statistics" (issue 18, `--cold-only` runs just this part): a fresh database, bulk
loaded in SQL with `--pending` pending items and a reviewer's `--cold-reviewed` earlier
reviews, never analyzed (autovacuum off on its tables), then claimed at once: the first
claim's time and the next ones', through `item_claim` and as the raw statement; target
under 10 ms. Run in a child process (its own database and Django setup). The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

from _common import bench_database_url, emit_figures, machine_load, say
from _review_data import django_setup, make_reviewers, populate

RAW_CLAIM = """
UPDATE reviews_reviewitem SET status = 'claimed', claimed_by_id = %(me)s,
       lease_expires_at = now() + interval '15 minutes', version = version + 1, updated_at = now()
WHERE id = (
    SELECT id FROM reviews_reviewitem
    WHERE status IN ('pending', 'needs_second_review') AND domain = %(domain)s
      AND assigned_to_id IS NULL
    ORDER BY priority DESC, confidence, source_created_at, id
    LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _worker(kind: str, user_id: int, claims: int, url: str, out) -> None:
    from django.db import connection

    latencies, ids = [], []
    if kind in ("raw", "statement"):
        import psycopg

        from reviews.services import _claim_sql

        # "statement": the project's own claim statement (the audit event and the "not
        # reviewed by me" check included) sent straight through psycopg; "raw": the least a
        # claim can be, one UPDATE of the first free row.
        sql = _claim_sql(1, agent=False, domain=False) if kind == "statement" else RAW_CLAIM
        params = {"me": user_id, "domain": "support", "d0": "support", "lease": 900}
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(claims):
                start = time.perf_counter()
                row = conn.execute(sql, params).fetchone()
                latencies.append(time.perf_counter() - start)
                ids.append(row[0] if row else None)
    else:
        from django.contrib.auth.models import User

        from reviews.services import item_claim

        user = User.objects.select_related("reviewer_profile").get(pk=user_id)
        for _ in range(claims):
            start = time.perf_counter()
            item = item_claim(reviewer=user)
            latencies.append(time.perf_counter() - start)
            ids.append(item.pk if item else None)
        connection.close()
    out.put((latencies, ids))


def run(kind: str, users: list, claims: int, url: str) -> dict:
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, u.pk, claims, url, out)) for u in users]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    latencies = [x for lat, _ in results for x in lat]
    ids = [i for _, got in results for i in got if i is not None]
    assert len(ids) == len(set(ids)), f"{kind}: an item was claimed twice"
    return {
        "claims": len(ids),
        "claims_per_s": round(len(ids) / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
    }


def reset_claims() -> None:
    """Puts the claimed items back and vacuums, as autovacuum would in a running system:
    otherwise every round walks the index entries of all earlier rounds' claims."""
    from django.db import connection

    from core.models import AuditEvent
    from reviews.models import ReviewItem

    ReviewItem.objects.filter(status="claimed").update(
        status="pending", claimed_by=None, lease_expires_at=None
    )
    AuditEvent.objects.filter(action="item.claimed").delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE reviews_reviewitem")


def review_screen(users: list, samples: int) -> dict:
    """Server time of GET /review/<id>/ for items the reviewer holds (Django's test client in
    this process: the full middleware, view and template stack, no network)."""
    from django.test import Client

    from reviews.services import item_claim

    client = Client()
    client.force_login(users[0])
    times = []
    for _ in range(samples):
        item = item_claim(reviewer=users[0])
        start = time.perf_counter()
        response = client.get(f"/review/{item.pk}/")
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    return {
        "review_screen_p50_ms": round(_percentile(times, 0.50) * 1000, 2),
        "review_screen_p95_ms": round(_percentile(times, 0.95) * 1000, 2),
    }


COLD_TABLES = ("reviews_interaction", "reviews_reviewitem", "reviews_review")


def cold_load(url: str, *, pending: int, reviewed: int) -> None:
    """A bulk load as a pipeline's import does it, in SQL, with nothing analyzed: `reviewed`
    items first in queue order, decided by bench-r0, then `pending` open ones."""
    from _common import connect

    with connect(url) as conn:
        for table in COLD_TABLES:
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        agent_id = conn.execute(
            """
            INSERT INTO reviews_agent (slug, name, kind, domain, confidence_threshold,
                audit_rate, required_reviews, review_intents, review_domains, guidelines,
                alert_thresholds, created_at)
            VALUES ('bot-support', 'Bot', 'chat', 'support', 0.7, 0.02, 1, '[]', '[]', '',
                    '{}', now())
            RETURNING id
            """
        ).fetchone()[0]
        me = conn.execute("SELECT id FROM auth_user WHERE username = 'bench-r0'").fetchone()[0]
        conn.execute(
            """
            INSERT INTO reviews_interaction (agent_id, external_id, agent_version,
                conversation_id, input, context, output, confidence, intent, domain, resolved,
                escalated, sentiment, turns, metadata, created_at, ingested_at, steps)
            SELECT %s, 'cold-' || g, '1', '', repeat(md5(g::text), 4), '[]',
                   repeat(md5((g + 7)::text), 8), (g %% 700) / 1000.0, '', 'support', NULL,
                   NULL, NULL, NULL, '{}', timestamptz '2026-11-01' + g * interval '1 second',
                   now(), '[]'
            FROM generate_series(1, %s) g
            """,
            (agent_id, pending + reviewed),
        )
        conn.execute(
            """
            INSERT INTO reviews_reviewitem (interaction_id, agent_id, domain, confidence,
                source_created_at, reason, reason_detail, priority, status, required_reviews,
                final_verdict, version, created_at, updated_at)
            SELECT id, agent_id, 'support', 0.0, created_at, 'low_confidence', '', 0,
                   CASE WHEN g <= %(reviewed)s THEN 'done' ELSE 'pending' END, 1,
                   CASE WHEN g <= %(reviewed)s THEN 'approve' ELSE '' END, 0, now(), now()
            FROM (SELECT id, agent_id, created_at, row_number() OVER (ORDER BY id) g
                  FROM reviews_interaction) i
            """,
            {"reviewed": reviewed},
        )
        conn.execute(
            """
            INSERT INTO reviews_review (item_id, reviewer_id, verdict, corrected_output, notes,
                is_adjudication, created_at)
            SELECT id, %s, 'approve', '', '', false, now() FROM reviews_reviewitem
            WHERE status = 'done'
            """,
            (me,),
        )


def cold(args) -> None:
    """The cold-statistics claim, in this process (see the module docstring)."""
    from _common import scalar, setup_database

    url = bench_database_url(args.database_url).rsplit("/", 1)[0] + "/coachdesk_bench_claim_cold"
    setup_database(url)
    django_setup(url)
    import reviews.management  # noqa: F401  (apps loaded)

    user = make_reviewers(["support"])[0]
    start = time.perf_counter()
    cold_load(url, pending=args.pending, reviewed=args.cold_reviewed)
    say(
        f"cold: {args.pending:,} pending and {args.cold_reviewed:,} reviews loaded "
        f"in {time.perf_counter() - start:.1f}s, not analyzed"
    )
    analyzed = scalar(
        url,
        "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)",
        (list(COLD_TABLES),),
    )
    # Warm this process (code paths, the lazy lease sweep) with a claim by someone who has
    # no pool: it reads nothing of the support queue, so the first timed claim below is the
    # database's first look at the loaded tables.
    from django.contrib.auth.models import User
    from django.db import connection

    from reviews.services import _claim_sql, item_claim

    assert item_claim(reviewer=User.objects.create(username="bench-no-pool")) is None
    project, raw = [], []
    for _ in range(args.cold_claims):  # alternate: first the project's, then the raw
        start = time.perf_counter()
        item = item_claim(reviewer=user)
        project.append(time.perf_counter() - start)
        assert item is not None and item.interaction_id > args.cold_reviewed
        with connection.cursor() as cursor:
            start = time.perf_counter()
            cursor.execute(
                _claim_sql(1, agent=False, domain=False),
                {"me": user.pk, "lease": 900, "d0": "support"},
            )
            assert cursor.fetchone() is not None
            raw.append(time.perf_counter() - start)
    still_unanalyzed = scalar(
        url, "SELECT count(*) FROM pg_stats WHERE tablename = ANY(%s)", (list(COLD_TABLES),)
    )
    figures = {
        "cold_pending": args.pending,
        "cold_reviews_by_reviewer": args.cold_reviewed,
        "cold_stats_rows_before": analyzed,
        "cold_stats_rows_after": still_unanalyzed,
        "cold_first_claim_ms": round(project[0] * 1000, 2),
        "cold_claim_p50_ms": round(_percentile(project, 0.5) * 1000, 2),
        "cold_claim_max_ms": round(max(project) * 1000, 2),
        "cold_raw_first_ms": round(raw[0] * 1000, 2),
        "cold_raw_p50_ms": round(_percentile(raw, 0.5) * 1000, 2),
    }
    say(f"cold: {figures}")
    emit_figures(figures)


def cold_in_child(args) -> dict:
    """`cold` in a child process (its own database and Django), its figures."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--cold-only", "--pending", str(args.pending)]
    cmd += ["--cold-reviewed", str(args.cold_reviewed), "--cold-claims", str(args.cold_claims)]
    if args.database_url:
        cmd += ["--database-url", args.database_url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines()[:-1]:
        say(line)
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="interactions in the database")
    parser.add_argument("--pending", type=int, default=200_000, help="pending review items")
    parser.add_argument("--claims", type=int, default=500, help="claims per reviewer per run")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--screen-samples", type=int, default=300)
    parser.add_argument("--cold-reviewed", type=int, default=1000)
    parser.add_argument("--cold-claims", type=int, default=50)
    parser.add_argument("--cold-only", action="store_true", help="only the cold-statistics part")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if args.cold_only:
        cold(args)
        return
    cold_figures = cold_in_child(args)
    url = bench_database_url(args.database_url).rsplit("/", 1)[0] + "/coachdesk_bench_claim"
    say(f"claim bench: n={args.n:,} pending={args.pending:,} workers={args.workers}")
    say(machine_load())
    start = time.perf_counter()
    populate(url, n=args.n, pending=args.pending, decided=min(args.pending // 2, args.n // 10))
    say(f"data made in {time.perf_counter() - start:.1f}s")
    django_setup(url)
    import reviews.management  # noqa: F401  (apps loaded)

    users = make_reviewers(["support"])[: args.workers]
    rounds = {"raw": [], "statement": [], "project": []}
    for round_ in range(2):  # alternate, so neither side always gets the warmer cache
        kinds = ("raw", "statement", "project")
        for kind in kinds if round_ == 0 else kinds[::-1]:
            reset_claims()
            result = run(kind, users, args.claims, url)
            rounds[kind].append(result)
            say(f"{kind:8} round {round_ + 1}: {result}")
    reset_claims()
    best = {k: max(v, key=lambda r: r["claims_per_s"]) for k, v in rounds.items()}
    screen = review_screen(users, args.screen_samples)
    say(f"review screen: {screen}")
    say(machine_load())
    ratio = best["project"]["claims_per_s"] / best["statement"]["claims_per_s"]
    to_minimal = best["project"]["claims_per_s"] / best["raw"]["claims_per_s"]
    emit_figures(
        {
            "bench": "claim",
            "n": args.n,
            "pending": args.pending,
            "workers": args.workers,
            "claims_per_s": best["project"]["claims_per_s"],
            "statement_claims_per_s": best["statement"]["claims_per_s"],
            "ratio": round(ratio, 3),
            "statement_p50_ms": best["statement"]["p50_ms"],
            "statement_p99_ms": best["statement"]["p99_ms"],
            "raw_claims_per_s": best["raw"]["claims_per_s"],
            "ratio_to_minimal_update": round(to_minimal, 3),
            "p50_ms": best["project"]["p50_ms"],
            "p99_ms": best["project"]["p99_ms"],
            "raw_p50_ms": best["raw"]["p50_ms"],
            "raw_p99_ms": best["raw"]["p99_ms"],
            **screen,
            **cold_figures,
            "meets_targets": ratio >= 0.8
            and best["project"]["p99_ms"] < 25
            and screen["review_screen_p95_ms"] < 50
            and cold_figures["cold_claim_max_ms"] < 10,
        }
    )


if __name__ == "__main__":
    main()
