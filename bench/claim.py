"""Claim benchmark: 8 reviewers claiming concurrently through the project's `item_claim`,
beside the raw single-statement SQL claim, on the same queue in the same run; then the
review screen's server time with N interactions in the database.

    python bench/claim.py [--n 1000000] [--pending 200000] [--claims 2000] [--workers 8]

Targets (issue 3): at least 70% of raw throughput, p99 under 25 ms; review screen server
time p95 under 50 ms with 1,000,000 interactions. The last line is one JSON object.
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
    if kind == "raw":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(claims):
                start = time.perf_counter()
                row = conn.execute(RAW_CLAIM, {"me": user_id, "domain": "support"}).fetchone()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="interactions in the database")
    parser.add_argument("--pending", type=int, default=200_000, help="pending review items")
    parser.add_argument("--claims", type=int, default=500, help="claims per reviewer per run")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--screen-samples", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = bench_database_url(args.database_url).rsplit("/", 1)[0] + "/coachdesk_bench_claim"
    say(f"claim bench: n={args.n:,} pending={args.pending:,} workers={args.workers}")
    say(machine_load())
    start = time.perf_counter()
    populate(url, n=args.n, pending=args.pending, decided=min(args.pending // 2, args.n // 10))
    say(f"data made in {time.perf_counter() - start:.1f}s")
    django_setup(url)
    import reviews.management  # noqa: F401  (apps loaded)

    users = make_reviewers(["support"])[: args.workers]
    rounds = {"raw": [], "project": []}
    for round_ in range(2):  # alternate, so neither side always gets the warmer cache
        for kind in ("raw", "project") if round_ == 0 else ("project", "raw"):
            reset_claims()
            result = run(kind, users, args.claims, url)
            rounds[kind].append(result)
            say(f"{kind:8} round {round_ + 1}: {result}")
    reset_claims()
    best = {k: max(v, key=lambda r: r["claims_per_s"]) for k, v in rounds.items()}
    screen = review_screen(users, args.screen_samples)
    say(f"review screen: {screen}")
    say(machine_load())
    ratio = best["project"]["claims_per_s"] / best["raw"]["claims_per_s"]
    emit_figures(
        {
            "bench": "claim",
            "n": args.n,
            "pending": args.pending,
            "workers": args.workers,
            "claims_per_s": best["project"]["claims_per_s"],
            "raw_claims_per_s": best["raw"]["claims_per_s"],
            "ratio": round(ratio, 3),
            "p50_ms": best["project"]["p50_ms"],
            "p99_ms": best["project"]["p99_ms"],
            "raw_p50_ms": best["raw"]["p50_ms"],
            "raw_p99_ms": best["raw"]["p99_ms"],
            **screen,
            "meets_targets": ratio >= 0.7
            and best["project"]["p99_ms"] < 25
            and screen["review_screen_p95_ms"] < 50,
        }
    )


if __name__ == "__main__":
    main()
