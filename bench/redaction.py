"""Redaction bench (issue 16): what a redaction policy costs at ingest.

The same N interactions, written with personal data in them (a third carry an e-mail address
and a phone number, a tenth an IBAN or a card number, every one an order number that must
stay), are imported by `manage.py import_interactions` twice into a fresh bench database:
once for an agent without a policy (the baseline, in the same run) and once for an agent
whose policy redacts every kind. Prints both rates, their ratio, what was redacted, and a
check that no planted value reached the stored texts.

    .venv/bin/python bench/redaction.py [--n 100000] [--drop-db]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from pathlib import Path

from _common import (
    PYTHON,
    bench_database_url,
    drop_database,
    emit_figures,
    machine_load,
    manage,
    project_env,
    rate,
    run_measured,
    say,
    scalar,
    setup_database,
)

POLICY = {"types": ["email", "phone", "iban", "card"], "keep_originals": True}
IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB29 NWBK 6016 1331 9268 19",
    "FR14 2004 1010 0505 0001 3M02 606",
]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 000000 00009"]
PHONES = ["+44 7911 123456", "+49 30 901820", "+33 1 42 68 53 00", "020 7946 0958"]


def records(n: int, agent: str, seed: int):
    rng = random.Random(seed)
    for i in range(n):
        conversation = f"conv-{i // 4}"
        parts = [f"Order {rng.randrange(100000, 999999)} has not arrived yet."]
        if i % 3 == 0:
            parts.append(f"Write to me at user{i // 4}@example.com or call {rng.choice(PHONES)}.")
        if i % 10 == 0:
            parts.append(f"Refund to {rng.choice(IBANS)} or card {rng.choice(CARDS)}.")
        yield {
            "agent": agent,
            "external_id": f"{agent}-{i}",
            "conversation_id": conversation,
            "input": " ".join(parts),
            "output": "Sorry about that: the parcel left our warehouse on 2026-11-28.",
            "confidence": rng.random(),
            "created_at": "2026-12-01T10:00:00Z",
        }


def write(path: Path, n: int, agent: str, seed: int) -> None:
    with path.open("w") as out:
        for rec in records(n, agent, seed):
            out.write(json.dumps(rec) + "\n")


def timed_import(url: str, path: Path, n: int, workdir: Path) -> float:
    run = run_measured(
        [PYTHON, "manage.py", "import_interactions", str(path)],
        env=project_env(url, LOG_LEVEL="INFO"),
        workdir=workdir,
    )
    if run.returncode != 0 or not re.search(rf"imported {n}\b", run.stdout + run.stderr):
        raise SystemExit(f"import failed ({run.returncode}): {(run.stdout + run.stderr)[-2000:]}")
    return run.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--database-url")
    parser.add_argument("--drop-db", action="store_true")
    args = parser.parse_args(argv)
    url = bench_database_url(args.database_url)
    say(f"redaction bench: {args.n:,} interactions per agent; {machine_load()}")
    setup_database(url)
    manage(
        url,
        "shell",
        "-c",
        "from agents.models import Agent\n"
        "Agent.objects.create(slug='plain-bot', name='plain-bot')\n"
        f"Agent.objects.create(slug='private-bot', name='private-bot', redaction={POLICY!r})\n",
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain, private = work / "plain.jsonl", work / "private.jsonl"
        write(plain, args.n, "plain-bot", args.seed)
        write(private, args.n, "private-bot", args.seed)
        plain_s = timed_import(url, plain, args.n, work)
        private_s = timed_import(url, private, args.n, work)
    counts = dict(
        scalar(
            url,
            "SELECT coalesce(jsonb_object_agg(k, n), '{}') FROM (SELECT key AS k, "
            "sum(value::int) AS n FROM reviews_interaction i JOIN reviews_agent a ON "
            "a.id = i.agent_id, jsonb_each_text(i.redactions) WHERE a.slug = 'private-bot' "
            "GROUP BY key) t",
        )
    )
    leaks = scalar(
        url,
        "SELECT count(*) FROM reviews_interaction i JOIN reviews_agent a ON a.id = i.agent_id "
        "WHERE a.slug = 'private-bot' AND (i.input ~ '@example\\.com' OR i.input ~ "
        "'4111 1111|DE89 3704|\\+44 7911')",
    )
    mappings = scalar(url, "SELECT count(*) FROM agents_redactedvalue")
    if args.drop_db:
        drop_database(url)
    plain_rate, private_rate = rate(args.n, plain_s), rate(args.n, private_s)
    ratio = round(private_rate / plain_rate, 3) if plain_rate else 0.0
    say(
        f"without a policy {plain_rate:,.0f} rows/s; with one {private_rate:,.0f} rows/s; "
        f"ratio {ratio}; redacted {counts}; mappings {mappings:,}; leaks {leaks}"
    )
    emit_figures(
        {
            "bench": "redaction",
            "n": args.n,
            "plain_rows_per_s": plain_rate,
            "redacted_rows_per_s": private_rate,
            "ratio": ratio,
            "redacted": counts,
            "mappings": mappings,
            "leaks": leaks,
            "checks_ok": leaks == 0,
        }
    )
    return 0 if leaks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
