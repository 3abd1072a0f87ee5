"""Regression-run benchmark: posting a new version's answers to N held-out corrected cases
(matching, routing to comparisons, storing), beside the ingest path for N interactions.

    python bench/regression.py [--n 10000] [--database-url URL] [--drop-db]

Target (the issue): a run of 10,000 answers is matched and routed in under 5 s on a 2-core
machine.

What runs, on a freshly migrated bench database (`coachdesk_bench_regression` by default):
1. seed (not timed, SQL + COPY): one agent, N interactions whose inputs are in the held-out
   split (REGRESSION_HOLDOUT_SHARE), each decided `correct` with one review; ANALYZE;
2. the run, in this process through the service the API calls
   (`evals.regression.regression_run_post`, then the summary the API answers with): a third
   of the answers equal to the reference up to whitespace and case (fixed), a third equal to
   the old answer (still wrong), the rest new (a comparison each); then the same post again
   (idempotent: nothing stored);
3. the ingest path for N new interactions of the same sizes
   (`ingest.services.interactions_ingest`, in requests of 5,000 as the API takes them).
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta

import orjson
from _common import (
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    machine_load,
    rate,
    say,
    scalar,
    setup_database,
)
from _review_data import django_setup

TARGET_SECONDS = 5.0
DEFAULT_DB = "coachdesk_bench_regression"
HOLDOUT_SHARE = 0.1  # settings.REGRESSION_HOLDOUT_SHARE's default (the bench sets no env)
SPLIT_BUCKETS = 10_000  # retraining.build.SPLIT_BUCKETS
INGEST_REQUEST = 5_000  # settings.INGEST_MAX_ITEMS_PER_REQUEST
SEED = 20261121
VERSION, NEW_VERSION = "2026.10.1", "2026.11.1"
_VOCABULARY = (
    "the a to of and or for with your our order refund shipping delivery address account "
    "invoice payment card subscription warranty return policy days within item product "
    "customer support please thank you we can cannot will need check status tracking parcel "
    "courier store price discount code size colour stock week month contract terms privacy "
    "data request delete export consent café Größe naïve — is are was has have this that it "
    "if because when which how what why today again sorry great sure"
)
_WORDS = _VOCABULARY.split()


class Texts:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, shortest: int, longest: int) -> str:
        rng = self.rng
        words, size = [], 0
        target = rng.randint(shortest, longest)
        while size < target:
            word = rng.choice(_WORDS)
            words.append(word)
            size += len(word) + 1
        return " ".join(words).capitalize() + "."


def held_out_inputs(texts: Texts, n: int) -> list[str]:
    """n distinct inputs in the held-out split: CRC-32 bucket below share × 10,000 (the
    definition in retraining.build.split_of), found by drawing until there are enough."""
    threshold = round(HOLDOUT_SHARE * SPLIT_BUCKETS)
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < n:
        text = texts.text(100, 300)
        if text not in seen and zlib.crc32(text.encode()) % SPLIT_BUCKETS < threshold:
            seen.add(text)
            found.append(text)
    return found


def seed(url: str, inputs: list[str], olds: list[str]) -> None:
    """The agent, N interactions (COPY), their review items decided `correct` and one review
    each whose correction is `"Corrected: " + old answer` (INSERT … SELECT)."""
    created = datetime(2026, 11, 1, tzinfo=UTC)
    with connect(url) as conn:
        agent_id = conn.execute(
            """
            INSERT INTO reviews_agent (slug, name, kind, domain, confidence_threshold, audit_rate,
                required_reviews, review_intents, review_domains, guidelines, alert_thresholds,
                auto_assign, created_at)
            VALUES ('bench-bot', 'Bench bot', 'chat', 'support', 0.7, 0.02, 1, '[]', '[]', '',
                    '{}', false, now())
            RETURNING id
            """
        ).fetchone()[0]
        reviewer_id = conn.execute(
            """
            INSERT INTO auth_user (password, is_superuser, username, first_name, last_name,
                email, is_staff, is_active, date_joined)
            VALUES ('!', false, 'bench-reviewer', '', '', '', false, true, now()) RETURNING id
            """
        ).fetchone()[0]
        columns = (
            "agent_id, external_id, agent_version, conversation_id, input, context, output, "
            "confidence, intent, domain, metadata, created_at, ingested_at"
        )
        with conn.cursor().copy(f"COPY reviews_interaction ({columns}) FROM STDIN") as copy:
            for i, (text, old) in enumerate(zip(inputs, olds, strict=True)):
                copy.write_row(
                    (agent_id, f"seed-{i:07d}", VERSION, f"c-{i}", text,
                     orjson.dumps([{"role": "user", "content": "Hi"}]).decode(), old, 0.4,
                     ("returns", "delivery", "refund")[i % 3], "support", "{}",
                     created + timedelta(seconds=i), created + timedelta(seconds=i))
                )  # fmt: skip
        conn.execute(
            """
            INSERT INTO reviews_reviewitem (interaction_id, agent_id, domain, confidence,
                source_created_at, reason, reason_detail, priority, status, required_reviews,
                final_verdict, decided_at, version, created_at, updated_at)
            SELECT id, agent_id, domain, confidence, created_at, 'low_confidence', '', 0, 'done',
                   1, 'correct', created_at + interval '1 day', 2, created_at, now()
            FROM reviews_interaction WHERE agent_id = %s
            """,
            (agent_id,),
        )
        conn.execute(
            """
            INSERT INTO reviews_review (item_id, reviewer_id, verdict, corrected_output, notes,
                is_adjudication, created_at)
            SELECT r.id, %s, 'correct', 'Corrected: ' || i.output, '', false, r.decided_at
            FROM reviews_reviewitem r JOIN reviews_interaction i ON i.id = r.interaction_id
            """,
            (reviewer_id,),
        )
        conn.execute("ANALYZE")


def answers_for(cases: list[tuple[int, str, str]], texts: Texts) -> tuple[list[dict], dict]:
    """(case id, old, reference) → answers: a third the reference with its case and spacing
    changed, a third the old answer, the rest new."""
    answers, mix = [], {"reference": 0, "unchanged": 0, "new": 0}
    for k, (case_id, old, reference) in enumerate(cases):
        if k % 3 == 0:
            answer, kind = "  " + reference.upper().replace(" ", "   \n"), "reference"
        elif k % 3 == 1:
            answer, kind = old, "unchanged"
        else:
            answer, kind = texts.text(200, 600), "new"
        mix[kind] += 1
        answers.append({"case_id": case_id, "answer": answer})
    return answers, mix


def ingest_records(texts: Texts, n: int) -> list[dict]:
    created = "2026-11-20T10:00:00Z"
    return [
        {
            "external_id": f"ingest-{i:07d}",
            "agent": "bench-bot",
            "agent_version": NEW_VERSION,
            "input": texts.text(100, 300),
            "context": [{"role": "user", "content": "Hi"}],
            "output": texts.text(200, 600),
            "confidence": 0.3 + (i % 70) / 100,
            "intent": "returns",
            "domain": "support",
            "created_at": created,
        }
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="cases and answers")
    parser.add_argument(
        "--database-url",
        default=None,
        help=f"bench database, dropped and re-created (default: {DEFAULT_DB} on the server of "
        "$BENCH_DATABASE_URL or the local one)",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.n < 3:
        parser.error("--n must be at least 3")
    n = args.n
    if args.database_url:
        url = bench_database_url(args.database_url)
    else:
        url = bench_database_url(None).rsplit("/", 1)[0] + "/" + DEFAULT_DB
    django_ready = False
    try:
        say(f"regression bench: n={n:,} db={database_name(url)}")
        say(machine_load())
        started = time.perf_counter()
        setup_database(url)
        texts = Texts(args.seed)
        inputs = held_out_inputs(texts, n)
        olds = [texts.text(200, 600) for _ in range(n)]
        seed(url, inputs, olds)
        say(f"seeded {n:,} held-out corrected cases in {time.perf_counter() - started:.1f}s")

        os.environ["REGRESSION_HOLDOUT_SHARE"] = str(HOLDOUT_SHARE)
        django_setup(url)
        django_ready = True
        from django.contrib.auth import get_user_model

        from agents.models import Agent
        from evals import regression, selectors
        from evals.models import Comparison, RegressionAnswer
        from ingest.services import interactions_ingest

        agent = Agent.objects.get(slug="bench-bot")
        user = get_user_model().objects.create(username="bench-ml")
        cases = [
            (case.id, case.old_answer, case.reference)
            for case in regression.cases_iter(agent, regression.SetFilters())
        ]
        answers, mix = answers_for(cases, texts)
        body = orjson.dumps({"version": NEW_VERSION, "answers": answers})
        checkpoint(url)

        # The run, as the API handler does it: the parsed body, the service, the summary.
        started = time.perf_counter()
        posted = orjson.loads(body)
        result = regression.regression_run_post(
            agent=agent, agent_version=NEW_VERSION, answers=posted["answers"], actor=user
        )
        summary = selectors.run_summary(result.run)
        run_seconds = time.perf_counter() - started
        run_rps = rate(n, run_seconds)
        say(
            f"run:       {n:,} answers in {run_seconds:.2f}s = {run_rps:,.0f} answers/s "
            f"(matched {result.matched:,}, unchanged {result.unchanged:,}, routed "
            f"{result.routed:,}, errors {len(result.errors)})"
        )
        started = time.perf_counter()
        again = regression.regression_run_post(
            agent=agent, agent_version=NEW_VERSION, answers=posted["answers"], actor=user
        )
        repost_seconds = time.perf_counter() - started
        say(f"re-post:   {again.duplicates:,} duplicates, {again.created} stored, "
            f"in {repost_seconds:.2f}s")  # fmt: skip

        records = ingest_records(texts, n)
        checkpoint(url)
        started = time.perf_counter()
        created = 0
        for start in range(0, n, INGEST_REQUEST):
            chunk = records[start : start + INGEST_REQUEST]
            ingested = interactions_ingest(records=enumerate(chunk), actor_id=user.pk, source="api")
            created += ingested.created
        ingest_seconds = time.perf_counter() - started
        ingest_rps = rate(n, ingest_seconds)
        ratio = round(run_rps / ingest_rps, 3) if ingest_rps else 0.0
        say(f"ingest:    {n:,} interactions in {ingest_seconds:.2f}s = {ingest_rps:,.0f} rows/s")
        say(f"side by side: run {run_rps:,.0f}/s vs ingest {ingest_rps:,.0f}/s, ratio {ratio:.2f}")

        stored = RegressionAnswer.objects.filter(run=result.run).count()
        comparisons = Comparison.objects.filter(kind="regression").count()
        checks = [
            (len(cases) == n, f"regression set {len(cases):,} cases (expected {n:,})"),
            (result.errors == [], f"run errors {len(result.errors)}"),
            (stored == n, f"answers stored {stored:,} (expected {n:,})"),
            (
                (result.matched, result.unchanged, result.routed)
                == (mix["reference"], mix["unchanged"], mix["new"]),
                f"matched / unchanged / routed {result.matched:,} / {result.unchanged:,} / "
                f"{result.routed:,} (expected {mix['reference']:,} / {mix['unchanged']:,} / "
                f"{mix['new']:,})",
            ),
            (comparisons == mix["new"], f"comparisons {comparisons:,}"),
            (
                summary["fixed"] == mix["reference"] and summary["pending"] == mix["new"],
                f"summary fixed {summary['fixed']:,}, pending {summary['pending']:,}",
            ),
            ((again.created, again.duplicates) == (0, n), "the second post stored nothing"),
            (created == n, f"ingest created {created:,} (expected {n:,})"),
            (
                scalar(url, "SELECT count(*) FROM evals_regressionanswer") == n,
                "answers in the database after the re-post",
            ),
        ]
        say(machine_load())
        for ok, text in checks:
            say(f"check {'ok  ' if ok else 'FAIL'} {text}")
        checks_ok = all(ok for ok, _ in checks)
        meets = run_seconds < TARGET_SECONDS
        say(
            f"{'PASS' if meets else 'FAIL'}: {n:,} answers matched and routed in "
            f"{run_seconds:.2f}s (target < {TARGET_SECONDS:.0f} s)"
        )
        emit_figures(
            {
                "bench": "regression",
                "n": n,
                "run_seconds": round(run_seconds, 3),
                "answers_per_s": run_rps,
                "ingest_seconds": round(ingest_seconds, 3),
                "ingest_rows_per_s": ingest_rps,
                "ratio": ratio,
                "repost_seconds": round(repost_seconds, 3),
                "matched": result.matched,
                "unchanged": result.unchanged,
                "routed": result.routed,
                "stored": stored,
                "target_seconds": TARGET_SECONDS,
                "meets_target": meets,
                "checks_ok": checks_ok,
            }
        )
        return 0 if checks_ok else 1
    finally:
        if args.drop_db:
            if django_ready:
                from django.db import connections

                connections.close_all()
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
