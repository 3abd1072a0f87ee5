"""Review deadlines in the KPI app: one alert per breach (webhook and e-mail, to a local
webhook receiver and a real local SMTP server), the daily digest's content, the KPI page's
"Deadlines" tab, and the sweep on a real Celery worker. Frozen clock: time_machine."""

import email
import email.policy
import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller

from kpis import sla, sla_selectors, tasks
from reviews.models import Deadline, Review, ReviewItem, SlaBreach, SlaDigest
from tests import factories
from tests.conftest import wait_for
from tests.kpis.test_alerts import Hook

# Wed 2 Dec 2026; London is on GMT (= UTC) in December, so hours read the same in both.
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Inbox:
    """A real SMTP server on a free loopback port (aiosmtpd) keeping what it receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"

    def stop(self):
        self.controller.stop()


@pytest.fixture
def inbox(settings):
    box = Inbox()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": box.port, "timeout": 5},
        }
    }
    yield box
    box.stop()


@pytest.fixture
def webhook(settings):
    receiver = Hook()
    settings.SLA_ALERT_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


def _item(agent, *, created: datetime, due: datetime | None, domain="legal", **extra):
    item = factories.ReviewItemFactory(
        interaction__agent=agent,
        interaction__domain=domain,
        domain=domain,
        created_at=created,
        due_at=due,
        sla_near_at=None if due is None else due - timedelta(hours=1),
        **extra,
    )
    return item


@pytest.fixture
def law_bot(db):
    return factories.AgentFactory(slug="law-bot", domain="legal")


@pytest.mark.django_db(transaction=True)
def test_it_alerts_once_per_breach(law_bot, lead, inbox, webhook, settings):
    factories.UserFactory(username="boss", roles=["admin"], email="boss@example.com")
    factories.UserFactory(username="nomail", roles=["admin"], email="")  # not a recipient
    factories.UserFactory(username="rita", roles=["reviewer"])  # not a lead
    item = _item(law_bot, created=T0, due=T0 + timedelta(hours=4))
    _item(law_bot, created=T0, due=T0 + timedelta(hours=8))  # not yet due
    with time_machine.travel(T0 + timedelta(hours=4, minutes=1), tick=False):
        first = sla.sla_sweep()  # the outbox publishes after commit: eager in tests
        second = sla.sla_sweep()
    assert (first["breached"], second["breached"]) == (1, 0)
    breach = SlaBreach.objects.get()
    assert breach.item_id == item.pk
    assert (breach.webhook_state, breach.webhook_attempts, breach.webhook_last_status) == (
        "delivered",
        1,
        200,
    )
    assert breach.emailed_at is not None
    [post] = webhook.requests
    assert post["body"]["event"] == "sla.breached"
    assert post["body"]["item_id"] == item.pk
    assert post["body"]["agent"] == "law-bot"
    assert post["headers"]["Idempotency-Key"] == f"coachdesk-sla-breach-{breach.pk}"
    [message] = inbox.messages
    assert sorted(inbox.envelopes[0][1]) == ["boss@example.com", "lee@example.com"]
    assert message["Subject"] == f"Deadline missed: item {item.pk} (law-bot)"
    assert "was due Wed 02 Dec 2026 13:00 GMT" in message.get_content()
    # The alert's task delivered twice (the outbox may) sends nothing more.
    tasks.sla_breach_alert(breach.pk)
    assert (len(webhook.requests), len(inbox.messages)) == (1, 1)
    # Decided after the breach: it still counts as a breach.
    ReviewItem.objects.filter(pk=item.pk).update(status="done", decided_at=T0 + timedelta(hours=5))
    rows = sla_selectors.within_deadline(T0.date(), T0.date())
    assert [(r.decided, r.within) for r in rows] == [(1, 0)]


@pytest.mark.django_db
def test_it_counts_reviews_within_the_deadline_by_hand(law_bot):
    day = T0.date()
    due = T0 + timedelta(hours=4)
    for minutes in (30, 60, 239):  # decided in time
        _item(
            law_bot, created=T0, due=due, status="done", decided_at=T0 + timedelta(minutes=minutes)
        )
    _item(law_bot, created=T0, due=due, status="done", decided_at=T0 + timedelta(hours=5))  # late
    _item(law_bot, created=T0, due=None, status="done", decided_at=T0)  # no deadline: not counted
    [row] = sla_selectors.within_deadline(day, day)
    assert (row.agent, row.decided, row.within, row.share) == ("law-bot", 4, 3, 0.75)


@pytest.mark.django_db
def test_it_sends_each_lead_one_digest_a_day(law_bot, lead, inbox, reviewer, other_reviewer):
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)  # 08:00 London: the digest hour
    support = factories.AgentFactory(slug="help-bot", domain="support")
    # Open legal items aged 30 min, 2 h, 5 h (overdue), 2 d, 4 d (overdue); open support 10 min.
    for age, overdue in ((0.5, False), (2, False), (5, True), (48, False), (96, True)):
        created = now - timedelta(hours=age)
        due = now - timedelta(minutes=1) if overdue else now + timedelta(hours=1)
        _item(law_bot, created=created, due=due)
    _item(support, created=now - timedelta(minutes=10), due=None, domain="support")
    _item(law_bot, created=now - timedelta(days=9), due=None, status="done", decided_at=now)
    # Breaches: two in the last 24 h, one older.
    for hours_ago in (1, 23, 30):
        breached = _item(law_bot, created=now - timedelta(days=5), due=now, status="done")
        SlaBreach.objects.create(
            item=breached,
            agent=law_bot,
            domain="legal",
            due_at=now - timedelta(hours=hours_ago + 1),
            breached_at=now - timedelta(hours=hours_ago),
        )
    # Throughput: rita 3 decisions + a skip in the last 24 h, oscar 1 (and 1 older).
    done = _item(law_bot, created=now - timedelta(days=3), due=None, status="done")
    for who, verdict, hours_ago in (
        (reviewer, "approve", 1),
        (reviewer, "approve", 2),
        (reviewer, "reject", 20),
        (reviewer, "skip", 3),
        (other_reviewer, "approve", 5),
        (other_reviewer, "approve", 30),
    ):
        review = factories.ReviewFactory(item=done, reviewer=who, verdict=verdict)
        Review.objects.filter(pk=review.pk).update(created_at=now - timedelta(hours=hours_ago))

    with time_machine.travel(now - timedelta(minutes=1), tick=False):
        assert sla.digests_send() == 0  # 07:59: not yet
    with time_machine.travel(now, tick=False):
        assert sla.digests_send() == 1
        assert sla.digests_send() == 0  # once a day
    assert SlaDigest.objects.get().user == lead

    [message] = inbox.messages
    assert message["To"] == "lee@example.com"
    assert message["Subject"] == "Coachdesk daily digest: 6 open, 2 overdue, 2 breaches"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert (
        "- law-bot / legal: 5 open, 2 overdue | < 1 h: 1, 1–4 h: 1, 4–24 h: 1, 1–3 d: 1, > 3 d: 1"
        in text
    )
    assert "- help-bot / support: 1 open, 0 overdue | < 1 h: 1, 1–4 h: 0" in text
    assert "Total: 6 open, 2 overdue" in text
    assert "BREACHES IN THE LAST 24 H: 2\n- law-bot / legal: 2" in text
    assert "- rita: 3\n- oscar: 1\n" in text
    html = message.get_body(("html",)).get_content()
    assert "<h2>Breaches in the last 24 h: 2</h2>" in html
    assert "<li>rita: 3</li>" in html

    with time_machine.travel(now + timedelta(days=1), tick=False):
        assert sla.digests_send() == 1  # the next day


@pytest.mark.django_db
def test_it_shows_deadlines_on_the_kpi_page(client, lead, law_bot, django_assert_max_num_queries):
    now = datetime.now(UTC)
    _item(law_bot, created=now - timedelta(hours=2), due=now - timedelta(minutes=5))
    _item(law_bot, created=now - timedelta(minutes=5), due=now + timedelta(hours=3))
    client.force_login(lead)
    with django_assert_max_num_queries(12):
        response = client.get("/kpis/deadlines/", {"agent": "law-bot"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="sla-backlog"' in body and 'id="sla-within"' in body
    assert '<td class="num overdue">1</td>' in body


@pytest.mark.django_db
def test_it_refuses_the_kpi_page_to_reviewers(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/kpis/deadlines/").status_code == 403


def test_it_schedules_the_sweep_and_the_digest(settings):
    assert settings.CELERY_BEAT_SCHEDULE["kpis.sla-sweep"]["task"] == tasks.sla_sweep.name
    assert settings.CELERY_BEAT_SCHEDULE["kpis.sla-sweep"]["schedule"] == 60.0
    assert settings.CELERY_BEAT_SCHEDULE["kpis.sla-digest"]["task"] == tasks.sla_digest.name


@pytest.mark.redis
@pytest.mark.celery_worker
def test_it_sweeps_on_a_real_worker(fresh_celery_pool, celery_worker, law_bot, lead):
    now = datetime.now(UTC)
    item = _item(law_bot, created=now - timedelta(hours=5), due=now - timedelta(minutes=1))
    tasks.sla_sweep.delay()
    breach = wait_for(lambda: SlaBreach.objects.filter(item=item).first(), timeout=60)
    # The alert went through the outbox to the worker too (no webhook configured: e-mail only).
    wait_for(lambda: SlaBreach.objects.filter(pk=breach.pk, emailed_at__isnull=False).exists())
    item.refresh_from_db()
    assert (item.sla_level, item.priority) == (2, 20)
    assert Deadline.objects.count() == 0


@pytest.mark.django_db
def test_it_answers_the_deadline_kpis_over_the_api(api_client, ml, law_bot):
    due = T0 + timedelta(hours=4)
    for hours in (1, 5):  # one in time, one late
        _item(law_bot, created=T0, due=due, status="done", decided_at=T0 + timedelta(hours=hours))
    with time_machine.travel(T0 + timedelta(hours=6), tick=False):
        _item(law_bot, created=T0, due=due)  # open, 6 h old, overdue
        response = api_client(ml).get(
            "/api/v1/kpis/deadlines?agent=law-bot&from=2026-12-01&to=2026-12-02"
        )
    assert response.status_code == 200
    body = response.json()
    [row] = body["rows"]
    assert (row["day"], row["decided"], row["within"], row["share"]) == ("2026-12-02", 2, 1, 0.5)
    assert body["backlog"] == [
        {
            "domain": "legal",
            "lt_1h": 0,
            "1h_4h": 0,
            "4h_24h": 1,
            "1d_3d": 0,
            "gt_3d": 0,
            "overdue": 1,
            "total": 1,
        }
    ]
    assert api_client(ml).get("/api/v1/kpis/deadlines?agent=nobody").status_code == 404
