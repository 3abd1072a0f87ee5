"""KPI recompute benchmark: the project's full recompute against one raw SQL statement that
computes the same numbers, and an incremental recompute of one day.

    python bench/kpis.py [--n N] [--days D] [--database-url URL] [--drop-db]

Targets (issue 5): the full recompute takes at most 2x the raw query; the incremental
recompute of one day takes under 1 s.

What runs, in order, on a freshly migrated bench database (`coachdesk_bench_kpis`):
1. generate (not timed) N interactions over D days before today for five agents (one a
   four-eyes agent, one a recommender) with three versions each, N/5 review items (95%
   decided, each with its review, two for the four-eyes agent) and N/10 feedback events,
   written with COPY; then ANALYZE;
2. the raw baseline: one SQL statement (CTEs, each a GROUP BY) computing what the recompute
   computes (interaction, verdict and calibration counts per agent, version, day and
   confidence bucket; click / skip counts and skipped refs; decisions; exact medians of the
   time to review; the backlog's created / decided counts; four-eyes pairs), fetching every
   group to the client like the project does;
3. `manage.py recompute_kpis --full` (a subprocess; the figure is the command's own timing,
   without the Python start-up, which is printed beside it);
   2 and 3 run twice, alternately; the better of each is kept (the first pays the cold cache);
4. one more day of traffic (today) is written with COPY, then `manage.py recompute_kpis`
   (the incremental run the periodic task makes) is timed the same way;
5. checks: the snapshots' totals match the raw query's.
The last line printed is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import time
from datetime import UTC, datetime
from datetime import time as dtime

import numpy as np
import pandas as pd
from _common import (
    PYTHON,
    ROOT,
    bench_database_url,
    checkpoint,
    connect,
    database_name,
    drop_database,
    emit_figures,
    machine_load,
    project_env,
    run_measured,
    say,
    setup_database,
)

TARGET_RATIO = 2.0
TARGET_INCREMENTAL_S = 1.0
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/coachdesk_bench_kpis"
SEED = 20261105
AGENTS = (
    # slug, kind, required reviews, share of traffic
    ("bench-support", "chat", 1, 0.35),
    ("bench-legal", "chat", 2, 0.15),
    ("bench-recs", "recommender", 1, 0.25),
    ("bench-billing", "chat", 1, 0.15),
    ("bench-sales", "chat", 1, 0.10),
)
REVIEWERS = 20
REFS = 300
VERSIONS = ("2026.9.1", "2026.10.1", "2026.11.1")


# --- data ---------------------------------------------------------------------------------------


def _copy(conn, table: str, frame: pd.DataFrame) -> None:
    """COPY a DataFrame (its columns named like the table's) in CSV chunks. In CSV an empty
    field is NULL: text columns without missing values are FORCE_NOT_NULL, so "" stays ""."""
    columns = ", ".join(frame.columns)
    text = [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
        and not frame[c].isna().any()
    ]
    options = "FORMAT csv" + (f", FORCE_NOT_NULL ({', '.join(text)})" if text else "")
    sql = f"COPY {table} ({columns}) FROM STDIN WITH ({options})"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for start in range(0, len(frame), 200_000):
            buffer = io.StringIO()
            frame.iloc[start : start + 200_000].to_csv(buffer, header=False, index=False)
            copy.write(buffer.getvalue())


def _ts(values: np.ndarray) -> pd.Series:
    """Epoch seconds → ISO timestamps with a UTC offset (what COPY reads for timestamptz)."""
    return pd.to_datetime(values, unit="s", utc=True).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def insert_agents_and_users(conn) -> list[int]:
    ids = []
    for slug, kind, required, _ in AGENTS:
        row = conn.execute(
            "INSERT INTO reviews_agent (slug, name, kind, domain, confidence_threshold, "
            "audit_rate, required_reviews, review_intents, review_domains, guidelines, "
            "alert_thresholds, created_at) VALUES (%s, %s, %s, 'support', 0.7, 0.05, %s, "
            "'[]', '[]', '', %s, now()) RETURNING id",
            [slug, slug, kind, required, '{"resolution_rate": {"below": 0.5, "days": 7}}'],
        ).fetchone()
        ids.append(row[0])
    for i in range(REVIEWERS):
        conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) VALUES ('!', false, %s, '', '', '', "
            "false, true, now())",
            [f"bench-reviewer-{i}"],
        )
    return ids


def generate(
    conn,
    *,
    n: int,
    first_id: dict[str, int],
    start: float,
    end: float,
    now: float,
    agent_ids: list[int],
    rng: np.random.Generator,
    prefix: str,
) -> dict[str, int]:
    """Writes n interactions created in [start, end) with their items, reviews and feedback
    (ids from `first_id`); returns the counts written."""
    users = [r[0] for r in conn.execute("SELECT id FROM auth_user ORDER BY id").fetchall()]
    shares = np.array([a[3] for a in AGENTS])
    agent_index = rng.choice(len(AGENTS), size=n, p=shares / shares.sum())
    created = np.sort(rng.uniform(start, end, size=n))
    span = max(end - start, 1.0)
    position = (created - start) / span
    version_index = np.minimum((position * 3).astype(int), 2)
    # later versions resolve more; a recommender has no outcome flags
    resolved = rng.random(n) < (0.55 + 0.08 * version_index)
    escalated = ~resolved & (rng.random(n) < 0.4)
    chat = np.array([AGENTS[a][1] == "chat" for a in agent_index])
    ids = np.arange(first_id["interaction"], first_id["interaction"] + n)
    interactions = pd.DataFrame(
        {
            "id": ids,
            "agent_id": np.array(agent_ids)[agent_index],
            "external_id": [f"{prefix}{i}" for i in ids],
            "agent_version": np.array(VERSIONS)[version_index],
            "conversation_id": "",
            "input": "q",
            "context": "[]",
            "output": "a",
            "confidence": rng.random(n).round(4),
            "intent": "",
            "domain": "support",
            "resolved": pd.array(np.where(chat, resolved, None), dtype="boolean"),
            "escalated": pd.array(np.where(chat, escalated, None), dtype="boolean"),
            "sentiment": np.where(chat, rng.uniform(-1, 1, n).round(2), np.nan),
            "turns": pd.array(np.where(chat, rng.integers(1, 12, n), None), dtype="Int64"),
            "metadata": "{}",
            "created_at": _ts(created),
            "ingested_at": _ts(created),
        }
    )
    _copy(conn, "reviews_interaction", interactions)

    # review items: a fifth of the interactions, 95% decided
    m = n // 5
    picked = np.sort(rng.choice(n, size=m, replace=False))
    queued = np.minimum(created[picked] + rng.uniform(0, 60, m), now - 2)
    decided_mask = rng.random(m) < 0.95
    decided_at = np.minimum(queued + rng.exponential(7200, m), now - 1)
    verdict = rng.choice(["approve", "correct", "reject"], size=m, p=[0.7, 0.2, 0.1])
    required = np.array([AGENTS[a][2] for a in agent_index[picked]])
    confidence = interactions["confidence"].to_numpy()[picked]
    item_ids = np.arange(first_id["reviewitem"], first_id["reviewitem"] + m)
    items = pd.DataFrame(
        {
            "id": item_ids,
            "interaction_id": ids[picked],
            "agent_id": interactions["agent_id"].to_numpy()[picked],
            "domain": "support",
            "confidence": confidence,
            "source_created_at": _ts(created[picked]),
            "reason": np.where(confidence < 0.7, "low_confidence", "audit_sample"),
            "reason_detail": "",
            "priority": 0,
            "status": np.where(decided_mask, "done", "pending"),
            "required_reviews": required,
            "final_verdict": np.where(decided_mask, verdict, ""),
            "decided_at": np.where(decided_mask, _ts(decided_at), None),
            "version": 0,
            "created_at": _ts(queued),
            "updated_at": _ts(np.where(decided_mask, decided_at, queued)),
        }
    )
    _copy(conn, "reviews_reviewitem", items)

    # reviews: one per decided item; four-eyes items get an agreeing (90%) first review
    d = np.flatnonzero(decided_mask)
    four = d[required[d] == 2]
    first_verdict = np.where(
        rng.random(len(four)) < 0.9,
        verdict[four],
        rng.choice(["approve", "correct", "reject"], len(four)),
    )
    review_item = np.concatenate([item_ids[d], item_ids[four]])
    review_verdict = np.concatenate([verdict[d], first_verdict])
    review_time = np.concatenate([decided_at[d], (queued[four] + decided_at[four]) / 2])
    r = len(review_item)
    reviews = pd.DataFrame(
        {
            "id": np.arange(first_id["review"], first_id["review"] + r),
            "item_id": review_item,
            "reviewer_id": rng.choice(users, size=r),
            "verdict": review_verdict,
            "corrected_output": np.where(review_verdict == "correct", "better", ""),
            "notes": "",
            "is_adjudication": False,
            "created_at": _ts(review_time),
        }
    )
    _copy(conn, "reviews_review", reviews)

    # feedback: 60% clicks / skips on the recommender's responses, the rest thumbs
    f = n // 10
    recs = np.flatnonzero(agent_index == 2)
    others = np.flatnonzero(agent_index != 2)
    f_recs = int(f * 0.6) if len(recs) else 0
    target = np.concatenate(
        [rng.choice(recs, size=f_recs) if f_recs else np.array([], dtype=int),
         rng.choice(others, size=f - f_recs)]
    )  # fmt: skip
    kinds = np.concatenate(
        [rng.choice(["clicked", "skipped"], size=f_recs, p=[0.35, 0.65]),
         rng.choice(["thumbs_up", "thumbs_down", "resolved"], size=f - f_recs)]
    )  # fmt: skip
    refs = np.where(
        np.arange(f) < f_recs, np.char.add("P-", rng.integers(0, REFS, f).astype(str)), ""
    )
    fb_ids = np.arange(first_id["feedback"], first_id["feedback"] + f)
    feedback = pd.DataFrame(
        {
            "id": fb_ids,
            "interaction_id": ids[target],
            "agent_id": interactions["agent_id"].to_numpy()[target],
            "kind": kinds,
            "item_ref": refs,
            "created_at": _ts(np.minimum(created[target] + rng.uniform(0, 3600, f), now - 1)),
            "dedupe_key": [f"{prefix}fb{i}" for i in fb_ids],
        }
    )
    _copy(conn, "reviews_feedbackevent", feedback)
    for table in ("interaction", "reviewitem", "review", "feedbackevent"):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('reviews_{table}', 'id'), "
            f"(SELECT max(id) FROM reviews_{table}))"
        )
    return {"interactions": n, "review_items": m, "reviews": r, "feedback": f}


# --- the raw baseline ---------------------------------------------------------------------------

DAY = "(({col}) AT TIME ZONE 'UTC')::date"
RAW_SQL = f"""
WITH inter AS (
    SELECT i.agent_id, i.agent_version, {DAY.format(col="i.created_at")} AS day,
           LEAST(floor(i.confidence * 20 + 1e-9), 19) AS bucket,
           count(*) AS n,
           count(*) FILTER (WHERE i.resolved) AS resolved, count(i.resolved) AS resolved_n,
           count(*) FILTER (WHERE i.escalated) AS escalated, count(i.escalated) AS escalated_n,
           sum(i.sentiment) AS sentiment_sum, sum(i.sentiment * i.sentiment) AS sentiment_sq,
           count(i.sentiment) AS sentiment_n,
           sum(i.turns::float) AS turns_sum, sum(i.turns::float * i.turns::float) AS turns_sq,
           count(i.turns) AS turns_n,
           count(r.id) AS routed,
           count(r.id) FILTER (
               WHERE r.final_verdict IN ('approve', 'correct', 'reject')) AS decided,
           count(r.id) FILTER (WHERE r.final_verdict = 'approve') AS approved,
           count(r.id) FILTER (WHERE r.final_verdict = 'correct') AS corrected,
           count(r.id) FILTER (WHERE r.final_verdict = 'reject') AS rejected,
           count(r.id) FILTER (WHERE r.final_verdict IN ('approve', 'correct', 'reject')
                               AND r.reason IN ('low_confidence', 'audit_sample')) AS cal_n,
           count(r.id) FILTER (WHERE r.final_verdict = 'approve'
                               AND r.reason IN ('low_confidence', 'audit_sample')) AS cal_approved,
           sum(i.confidence) FILTER (WHERE r.final_verdict IN ('approve', 'correct', 'reject')
                               AND r.reason IN ('low_confidence', 'audit_sample')) AS cal_conf
    FROM reviews_interaction i LEFT JOIN reviews_reviewitem r ON r.interaction_id = i.id
    GROUP BY 1, 2, 3, 4
), fb AS (
    SELECT f.agent_id, i.agent_version, {DAY.format(col="i.created_at")} AS day,
           count(DISTINCT f.interaction_id) AS feedback_n,
           count(DISTINCT f.interaction_id) FILTER (WHERE f.kind = 'clicked') AS clicked,
           count(*) AS events, count(*) FILTER (WHERE f.kind = 'skipped') AS skipped
    FROM reviews_feedbackevent f JOIN reviews_interaction i ON i.id = f.interaction_id
    WHERE f.kind IN ('clicked', 'skipped')
    GROUP BY 1, 2, 3
), refs AS (
    SELECT f.agent_id, i.agent_version, {DAY.format(col="i.created_at")} AS day, f.item_ref,
           count(*) AS n
    FROM reviews_feedbackevent f JOIN reviews_interaction i ON i.id = f.interaction_id
    WHERE f.kind = 'skipped' AND f.item_ref <> ''
    GROUP BY 1, 2, 3, 4
), decisions AS (
    SELECT it.agent_id, i.agent_version, {DAY.format(col="rv.created_at")} AS day, rv.verdict,
           count(*) AS n
    FROM reviews_review rv JOIN reviews_reviewitem it ON it.id = rv.item_id
    JOIN reviews_interaction i ON i.id = it.interaction_id
    GROUP BY 1, 2, 3, 4
), ttr AS (
    SELECT it.agent_id, i.agent_version, {DAY.format(col="it.decided_at")} AS day, count(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY EXTRACT(EPOCH FROM it.decided_at - it.created_at)) AS median
    FROM reviews_reviewitem it JOIN reviews_interaction i ON i.id = it.interaction_id
    WHERE it.decided_at IS NOT NULL
    GROUP BY GROUPING SETS ((1, 2, 3), (1, 3))
), queued AS (
    SELECT it.agent_id, i.agent_version, {DAY.format(col="it.created_at")} AS day, count(*) AS n
    FROM reviews_reviewitem it JOIN reviews_interaction i ON i.id = it.interaction_id
    GROUP BY 1, 2, 3
), closed AS (
    SELECT it.agent_id, i.agent_version, {DAY.format(col="it.decided_at")} AS day, count(*) AS n,
           min(it.created_at) AS oldest
    FROM reviews_reviewitem it JOIN reviews_interaction i ON i.id = it.interaction_id
    GROUP BY 1, 2, 3
), pairs AS (
    SELECT it.agent_id, i.agent_version, {DAY.format(col="rv.created_at")} AS day,
           rv.item_id, rv.reviewer_id, rv.verdict,
           row_number() OVER (PARTITION BY rv.item_id ORDER BY rv.created_at, rv.id) AS k,
           lag(rv.verdict) OVER (PARTITION BY rv.item_id ORDER BY rv.created_at, rv.id) AS first,
           lag(rv.reviewer_id) OVER (PARTITION BY rv.item_id ORDER BY rv.created_at, rv.id) AS a
    FROM reviews_review rv JOIN reviews_reviewitem it ON it.id = rv.item_id
    JOIN reviews_interaction i ON i.id = it.interaction_id
    WHERE it.required_reviews = 2 AND NOT rv.is_adjudication
      AND rv.verdict IN ('approve', 'correct', 'reject')
), four_eyes AS (
    SELECT agent_id, agent_version, day, least(a, reviewer_id) AS r1,
           greatest(a, reviewer_id) AS r2, first, verdict, count(*) AS n
    FROM pairs WHERE k = 2 GROUP BY 1, 2, 3, 4, 5, 6, 7
)
SELECT 'inter', row_to_json(x)::text FROM inter x
UNION ALL SELECT 'fb', row_to_json(x)::text FROM fb x
UNION ALL SELECT 'refs', row_to_json(x)::text FROM refs x
UNION ALL SELECT 'decisions', row_to_json(x)::text FROM decisions x
UNION ALL SELECT 'ttr', row_to_json(x)::text FROM ttr x
UNION ALL SELECT 'queued', row_to_json(x)::text FROM queued x
UNION ALL SELECT 'closed', row_to_json(x)::text FROM closed x
UNION ALL SELECT 'four_eyes', row_to_json(x)::text FROM four_eyes x
"""


def raw_query(url: str) -> tuple[float, int]:
    with connect(url) as conn:
        started = time.perf_counter()
        rows = conn.execute(RAW_SQL).fetchall()
        seconds = time.perf_counter() - started
    return seconds, len(rows)


# --- the project --------------------------------------------------------------------------------

_TIMED = re.compile(r"recomputed (\d+) agent-days \((\d+) rows\) in ([0-9.]+) s")


def recompute(url: str, workdir, *args: str) -> dict:
    measured = run_measured(
        [PYTHON, "manage.py", "recompute_kpis", *args], env=project_env(url), workdir=workdir
    )
    if measured.returncode != 0:
        raise SystemExit(f"recompute_kpis {' '.join(args)} failed:\n{measured.stderr[-3000:]}")
    match = _TIMED.search(measured.stdout)
    if not match:
        raise SystemExit(f"unexpected output of recompute_kpis: {measured.stdout!r}")
    return {
        "seconds": float(match.group(3)),
        "wall": measured.seconds,
        "agent_days": int(match.group(1)),
        "rows": int(match.group(2)),
        "peak_rss_mb": measured.peak_rss_mb,
    }


def checks(url: str, counts: dict) -> dict:
    """The snapshots agree with the raw data: interactions, resolved, decided items, reviews."""
    with connect(url) as conn:
        snap = conn.execute(
            "SELECT coalesce(sum((stats->>'interactions')::int), 0), "
            "coalesce(sum((stats->>'resolved')::int), 0), "
            "coalesce(sum((stats->>'decided')::int), 0), "
            "coalesce(sum((SELECT sum(value::int) FROM jsonb_each_text(stats->'decisions'))), 0) "
            "FROM kpis_kpisnapshot WHERE agent_version = ''"
        ).fetchone()
        raw = conn.execute(
            "SELECT (SELECT count(*) FROM reviews_interaction), "
            "(SELECT count(*) FROM reviews_interaction WHERE resolved), "
            "(SELECT count(*) FROM reviews_reviewitem WHERE final_verdict <> ''), "
            "(SELECT count(*) FROM reviews_review)"
        ).fetchone()
    return {"snapshot": list(snap), "raw": list(raw), "ok": list(snap) == list(raw)}


def generate_in_child(url: str, *, what: str, n: int, days: int, seed: int, now: float) -> dict:
    """Runs the data generation in a child process: the measured recompute is a child of
    this process too, and a child's peak RSS counts the parent's memory at fork time (so
    the parent must not hold a million generated rows)."""
    import json
    import subprocess

    proc = subprocess.run(
        [PYTHON, __file__, "--generate", what, "--n", str(n), "--days", str(days),
         "--seed", str(seed), "--now", repr(now), "--database-url", url],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"data generation failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def generate_main(url: str, *, what: str, n: int, days: int, seed: int, now: float) -> dict:
    """`--generate base`: agents, reviewers and N interactions over the D days before today;
    `--generate day`: a day's share of N created today so far (after the existing rows)."""
    midnight = datetime.combine(
        datetime.fromtimestamp(now, UTC).date(), dtime.min, tzinfo=UTC
    ).timestamp()
    rng = np.random.default_rng(seed if what == "base" else seed + 1)
    with connect(url) as conn:
        if what == "base":
            agent_ids = insert_agents_and_users(conn)
            first_id = {"interaction": 1, "reviewitem": 1, "review": 1, "feedback": 1}
            start, end, prefix = midnight - days * 86400, midnight, "b"
        else:
            slugs = [a[0] for a in AGENTS]
            found = dict(conn.execute("SELECT slug, id FROM reviews_agent").fetchall())
            agent_ids = [found[slug] for slug in slugs]
            tops = conn.execute(
                "SELECT (SELECT max(id) FROM reviews_interaction), "
                "(SELECT max(id) FROM reviews_reviewitem), (SELECT max(id) FROM reviews_review), "
                "(SELECT max(id) FROM reviews_feedbackevent)"
            ).fetchone()
            first_id = dict(zip(("interaction", "reviewitem", "review", "feedback"),
                                (t + 1 for t in tops), strict=True))  # fmt: skip
            n = max(10, n // days)
            start, end, prefix = midnight, min(now - 60, midnight + 86400), "t"
        counts = generate(
            conn, n=n, first_id=first_id, start=start, end=end, now=now,
            agent_ids=agent_ids, rng=rng, prefix=prefix,
        )  # fmt: skip
        conn.commit()
    if what == "base":
        with connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="interactions (default 1,000,000)")
    parser.add_argument("--days", type=int, default=90, help="days of history (default 90)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="bench database, dropped and re-created (name must start with coachdesk_bench; "
        f"default $BENCH_KPIS_DATABASE_URL or {DEFAULT_URL})",
    )
    parser.add_argument("--drop-db", action="store_true", help="drop the bench database at the end")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--generate", choices=["base", "day"], help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 10 or args.days < 2:
        parser.error("--n must be at least 10 and --days at least 2")
    url = bench_database_url(
        args.database_url or os.environ.get("BENCH_KPIS_DATABASE_URL") or DEFAULT_URL
    )
    n, days = args.n, args.days
    if args.generate:  # the child of generate_in_child
        import json

        counts = generate_main(
            url, what=args.generate, n=n, days=days, seed=args.seed, now=args.now
        )
        print(json.dumps(counts))
        return 0
    import tempfile
    from pathlib import Path

    workdir = Path(tempfile.mkdtemp(prefix="coachdesk-bench-kpis-"))
    try:
        say(f"kpis bench: n={n:,} days={days} db={database_name(url)}")
        say(machine_load())
        started = time.perf_counter()
        setup_database(url)
        say(f"database re-created and migrated in {time.perf_counter() - started:.1f}s")

        now = datetime.now(UTC).timestamp()
        started = time.perf_counter()
        counts = generate_in_child(url, what="base", n=n, days=days, seed=args.seed, now=now)
        checkpoint(url)
        say(
            f"generated {counts['interactions']:,} interactions, {counts['review_items']:,} review "
            f"items, {counts['reviews']:,} reviews, {counts['feedback']:,} feedback events in "
            f"{time.perf_counter() - started:.1f}s (COPY, not timed)"
        )

        raws, fulls = [], []
        for attempt in (1, 2):
            seconds, groups = raw_query(url)
            raws.append(seconds)
            say(f"raw SQL (run {attempt}): {seconds:.2f}s, {groups:,} groups")
            full = recompute(url, workdir, "--full")
            fulls.append(full)
            say(
                f"full recompute (run {attempt}): {full['seconds']:.2f}s "
                f"({full['wall']:.2f}s with start-up), {full['agent_days']} agent-days, "
                f"{full['rows']:,} rows, peak RSS {full['peak_rss_mb']:.0f} MB"
            )
        raw_s = min(raws)
        full_best = min(fulls, key=lambda f: f["seconds"])
        check = checks(url, counts)

        # one more day: today's traffic so far (a day's share of N), then the periodic run
        more = generate_in_child(
            url, what="day", n=n, days=days, seed=args.seed, now=datetime.now(UTC).timestamp()
        )
        say(f"added one day: {more['interactions']:,} interactions, {more['reviews']:,} reviews")
        incremental = recompute(url, workdir)
        say(
            f"incremental recompute: {incremental['seconds']:.2f}s "
            f"({incremental['wall']:.2f}s with start-up), {incremental['agent_days']} agent-days"
        )
        ratio = full_best["seconds"] / raw_s if raw_s else 0.0
        say(
            f"full recompute {full_best['seconds']:.2f}s vs raw SQL {raw_s:.2f}s: ratio "
            f"{ratio:.2f} (target ≤ {TARGET_RATIO}); incremental {incremental['seconds']:.2f}s "
            f"(target < {TARGET_INCREMENTAL_S} s); checks {'ok' if check['ok'] else check}"
        )
        say(machine_load())
        emit_figures(
            {
                "bench": "kpis",
                "n": n,
                "days": days,
                "review_items": counts["review_items"],
                "reviews": counts["reviews"],
                "feedback": counts["feedback"],
                "full_recompute_s": round(full_best["seconds"], 3),
                "full_recompute_wall_s": round(full_best["wall"], 3),
                "raw_sql_s": round(raw_s, 3),
                "ratio": round(ratio, 2),
                "target_ratio": TARGET_RATIO,
                "incremental_s": round(incremental["seconds"], 3),
                "incremental_wall_s": round(incremental["wall"], 3),
                "incremental_agent_days": incremental["agent_days"],
                "target_incremental_s": TARGET_INCREMENTAL_S,
                "snapshot_rows": full_best["rows"],
                "peak_rss_mb": full_best["peak_rss_mb"],
                "checks_ok": check["ok"],
            }
        )
        return 0 if check["ok"] else 1
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
        if args.drop_db:
            drop_database(url)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
