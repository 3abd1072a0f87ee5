"""A review-queue data set made in SQL (fast; not timed): agents, N interactions over 30 days,
review items for a share of them (pending, plus decided ones with reviews), and reviewers.

Used by bench/claim.py and bench/console.py, which then load Django in-process against the
bench database to call the project's own functions.
"""

from __future__ import annotations

import os
import sys

from _common import BENCH_SECRET_KEY, ROOT, connect, setup_database

DOMAINS = ("support", "legal", "product")
REVIEWERS = 8


def populate(url: str, *, n: int, pending: int, decided: int) -> None:
    setup_database(url)
    with connect(url) as conn:
        conn.execute("SET work_mem = '256MB'")
        conn.execute(
            """
            INSERT INTO reviews_agent (slug, name, kind, domain, confidence_threshold, audit_rate,
                required_reviews, review_intents, review_domains, guidelines, alert_thresholds,
                created_at)
            SELECT 'bot-' || d, 'Bot ' || d, 'chat', d, 0.7, 0.02, 1, '[]', '[]',
                   'Be precise. Cite the policy.', '{}', now()
            FROM unnest(%s::text[]) d
            """,
            (list(DOMAINS),),
        )
        conn.execute(
            """
            INSERT INTO reviews_interaction (agent_id, external_id, agent_version, conversation_id,
                input, context, output, confidence, intent, domain, resolved, escalated, sentiment,
                turns, metadata, created_at, ingested_at)
            SELECT a.id, 'b-' || g, CASE WHEN g %% 2 = 0 THEN '2026.11.1' ELSE '2026.10.1' END,
                   'c-' || (g / 3), repeat(md5(g::text), 4),
                   jsonb_build_array(
                       jsonb_build_object('role', 'user', 'content', md5((g + 1)::text))),
                   repeat(md5((g + 7)::text), 8), (g %% 1000) / 1000.0, 'intent-' || (g %% 20),
                   a.domain, g %% 3 = 0, g %% 11 = 0, ((g %% 200) - 100) / 100.0, 2 + g %% 6,
                   '{"channel": "web"}', now() - ((g %% 43200) || ' minutes')::interval, now()
            FROM generate_series(1, %s) g
            JOIN reviews_agent a ON a.domain = (%s::text[])[1 + g %% 3]
            """,
            (n, list(DOMAINS)),
        )
        # The lowest-confidence interactions become review items: `decided` done, `pending` open.
        conn.execute(
            """
            INSERT INTO reviews_reviewitem (interaction_id, agent_id, domain, confidence,
                source_created_at, reason, reason_detail, priority, status, required_reviews,
                final_verdict, decided_at, version, created_at, updated_at)
            SELECT i.id, i.agent_id, i.domain, i.confidence, i.created_at, 'low_confidence', '',
                   0, CASE WHEN rn <= %s THEN 'done' ELSE 'pending' END, 1,
                   CASE WHEN rn <= %s THEN 'approve' ELSE '' END,
                   CASE WHEN rn <= %s THEN i.created_at + interval '1 hour' END, 0,
                   i.created_at, now()
            FROM (SELECT id, agent_id, domain, confidence, created_at,
                         row_number() OVER (ORDER BY id) rn
                  FROM reviews_interaction WHERE confidence < 0.7 ORDER BY id LIMIT %s) i
            """,
            (decided, decided, decided, pending + decided),
        )
        conn.execute("ANALYZE")


def django_setup(url: str) -> None:
    """Loads the project in this process against the bench database."""
    os.environ.update(
        DATABASE_URL=url,
        SECRET_KEY=BENCH_SECRET_KEY,
        DEBUG="0",
        COACHDESK_PLAIN_STATIC="1",
        COACHDESK_HTTPS="0",
        ALLOWED_HOSTS="testserver,127.0.0.1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_reviewers(domains: list[str]) -> list:
    """REVIEWERS users in the reviewer group, with `domains` (Django must be set up)."""
    from django.contrib.auth.models import Group, User

    from accounts.models import ReviewerProfile

    group = Group.objects.get(name="reviewer")
    users = []
    for i in range(REVIEWERS):
        user, _ = User.objects.get_or_create(username=f"bench-r{i}")
        user.set_password("bench-password")
        user.save()
        user.groups.add(group)
        ReviewerProfile.objects.update_or_create(user=user, defaults={"domains": domains})
        users.append(user)
    return users
