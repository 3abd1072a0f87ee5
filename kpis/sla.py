"""Review deadlines (SLA): the sweep, breach alerts and the daily digest (writes of the KPI
app, which owns alerts and their deliveries; the items' escalation itself is reviews.sla).

- `sla_sweep` (Celery beat, every SLA_SWEEP_SECONDS): escalates items (reviews.sla) and, in
  the same transaction, puts one outbox message per new breach (`kpis.tasks.sla_breach_alert`),
  sent after commit; then retries the breach webhooks whose backoff has passed.
- `breach_alert`: one e-mail to the leads (claimed by a compare-and-swap on `emailed_at`, so
  a message delivered twice sends once) and the first webhook attempt.
- `breach_webhook_attempt`: one POST, claimed by a compare-and-swap on the attempt count,
  then moved pending → delivered | failed (or stays pending with a backoff) through
  core.transitions, like the KPI alerts' deliveries (kpis.alerts, whose POST it reuses).
- `digests_send` (beat, every 15 min; and `manage.py send_digest`): once the SLA-local
  digest hour has come, each lead gets one digest a day (an `SlaDigest` row inserted first:
  two senders send once; removed again when sending failed, so the next run retries).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from core.outbox import outbox_enqueue
from core.transitions import StateMachine, transition
from kpis import sla_selectors
from kpis.alerts import webhook_attempt
from reviews.models import SlaBreach, SlaDigest
from reviews.sla import items_escalate

log = logging.getLogger(__name__)
Hook = SlaBreach.WebhookState


# --- the sweep ----------------------------------------------------------------------------------


def sla_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Escalates near / past-due items and queues one alert per new breach (in the same
    transaction: a rolled-back sweep alerts nobody), then retries due webhooks. Running it
    twice changes nothing the second time. Returns counts."""
    now = now or timezone.now()
    with transaction.atomic():
        escalation = items_escalate(now=now)
        for breach_id in escalation.breach_ids:
            outbox_enqueue("kpis.tasks.sla_breach_alert", breach_id)
    retried = breach_webhooks_retry_due(now=now)
    return {"near": escalation.near, "breached": escalation.breached, "retried": retried}


# --- one breach's alert -------------------------------------------------------------------------


def _sla_now_text(moment: datetime) -> str:
    local = moment.astimezone(ZoneInfo(settings.SLA_TIME_ZONE))
    return local.strftime("%a %d %b %Y %H:%M %Z")


def breach_payload(breach: SlaBreach) -> dict[str, Any]:
    item = breach.item
    text = (
        f"[Coachdesk] deadline missed: item {item.pk} ({breach.agent.slug}"
        f"{', ' + breach.domain if breach.domain else ''}) was due "
        f"{_sla_now_text(breach.due_at)}"
    )
    return {
        "event": "sla.breached",
        "breach_id": breach.pk,
        "item_id": item.pk,
        "agent": breach.agent.slug,
        "domain": breach.domain,
        "reason": item.reason,
        "status": item.status,
        "due_at": breach.due_at.isoformat(),
        "breached_at": breach.breached_at.isoformat(),
        "text": text,
    }


def _load(breach_id: int) -> SlaBreach | None:
    return SlaBreach.objects.select_related("item", "agent").filter(pk=breach_id).first()


def breach_alert(*, breach_id: int, now: datetime | None = None) -> SlaBreach | None:
    """The alert of one breach: the leads' e-mail (once) and the first webhook attempt."""
    breach_email(breach_id=breach_id, now=now)
    breach_webhook_attempt(breach_id=breach_id, now=now)
    return _load(breach_id)


def breach_email(*, breach_id: int, now: datetime | None = None) -> bool:
    """Sends the breach's e-mail to the leads once: `emailed_at` is claimed by a
    compare-and-swap first (a second delivery of the message finds it set) and released
    when sending failed, so a retry sends it. Returns whether this call sent it."""
    now = now or timezone.now()
    claimed = SlaBreach.objects.filter(pk=breach_id, emailed_at__isnull=True).update(emailed_at=now)
    if not claimed:
        return False
    breach = _load(breach_id)
    to = list(sla_selectors.leads().values_list("email", flat=True))
    if breach is None or not to:
        return False
    payload = breach_payload(breach)
    body = (
        f"{payload['text']}.\n\n"
        f"Item: {payload['item_id']} ({payload['reason']}, now {payload['status']})\n"
        f"Agent: {payload['agent']}\nDomain: {payload['domain'] or '-'}\n"
        f"Due: {_sla_now_text(breach.due_at)}\n"
        f"Breached (seen by the sweep): {_sla_now_text(breach.breached_at)}\n"
    )
    try:
        send_mail(
            f"Deadline missed: item {breach.item_id} ({breach.agent.slug})",
            body,
            settings.DEFAULT_FROM_EMAIL,
            to,
        )
    except Exception:
        SlaBreach.objects.filter(pk=breach_id, emailed_at=now).update(emailed_at=None)
        raise
    return True


class BreachWebhookConflict(Exception):
    """The webhook delivery moved on (a later attempt) while this one was being sent."""


WEBHOOK_STATES = StateMachine(
    model=SlaBreach,
    target_type="sla_breach",
    status_field="webhook_state",
    moves={
        (Hook.PENDING, Hook.PENDING): "sla_webhook.retry_scheduled",
        (Hook.PENDING, Hook.DELIVERED): "sla_webhook.delivered",
        (Hook.PENDING, Hook.FAILED): "sla_webhook.failed",
    },
    conflict=BreachWebhookConflict,
    conflict_message="This delivery changed in the meantime.",
)


def breach_webhook_attempt(*, breach_id: int, now: datetime | None = None) -> bool:
    """One POST of a pending, due breach webhook. Same rules as the KPI alerts' deliveries:
    2xx delivered; other 4xx failed; timeouts, connection errors, 408, 429, 5xx retried with
    exponential backoff up to KPI_ALERT_WEBHOOK_ATTEMPTS attempts. Returns whether an
    attempt was made."""
    now = now or timezone.now()
    breach = (
        SlaBreach.objects.select_related("item", "agent")
        .filter(pk=breach_id, webhook_state=Hook.PENDING, webhook_next_at__lte=now)
        .first()
    )
    if breach is None:
        return False
    attempts = breach.webhook_attempts + 1
    lease = now + timedelta(seconds=settings.KPI_ALERT_WEBHOOK_TIMEOUT * 2 + 5)
    claimed = SlaBreach.objects.filter(
        pk=breach.pk, webhook_state=Hook.PENDING, webhook_attempts=breach.webhook_attempts
    ).update(webhook_attempts=attempts, webhook_next_at=lease)
    if not claimed:
        return False
    sent = webhook_attempt(
        settings.SLA_ALERT_WEBHOOK_URL,
        breach_payload(breach),
        idempotency_key=f"coachdesk-sla-breach-{breach.pk}",
        attempts=attempts,
    )
    changes = {
        "webhook_last_status": sent.status,
        "webhook_last_error": sent.error,
        "webhook_delivered_at": sent.delivered_at,
        "webhook_next_at": sent.next_at,
    }
    try:
        with transaction.atomic():
            transition(
                WEBHOOK_STATES,
                breach,
                sent.state,
                guard={"webhook_attempts": attempts},
                changes=changes,
            )
    except BreachWebhookConflict:
        pass
    return True


def breach_webhooks_retry_due(*, now: datetime | None = None) -> int:
    """Attempts the breach webhooks whose backoff has passed (at most 100 a run)."""
    now = now or timezone.now()
    due = list(
        SlaBreach.objects.filter(webhook_state=Hook.PENDING, webhook_next_at__lte=now)
        .order_by("webhook_next_at")
        .values_list("pk", flat=True)[:100]
    )
    return sum(breach_webhook_attempt(breach_id=pk, now=now) for pk in due)


# --- the daily digest ---------------------------------------------------------------------------


def digest_context(*, now: datetime) -> dict[str, Any]:
    """What every lead's digest says (four queries, whatever the size of the data)."""
    since = now - timedelta(hours=24)
    backlog = sla_selectors.backlog(now)
    breaches = sla_selectors.breaches_between(since, now)
    return {
        "now": now,
        "now_text": _sla_now_text(now),
        "buckets": sla_selectors.BUCKET_LABELS,
        "backlog": backlog,
        "totals": sla_selectors.backlog_totals(backlog),
        "breaches": breaches,
        "breach_count": sum(b["n"] for b in breaches),
        "throughput": sla_selectors.throughput_between(since, now),
    }


def digest_message(*, to: str, context: dict[str, Any]) -> EmailMultiAlternatives:
    subject = (
        f"Coachdesk daily digest: {context['totals']['total']} open, "
        f"{context['totals']['overdue']} overdue, {context['breach_count']} breaches"
    )
    message = EmailMultiAlternatives(
        subject,
        render_to_string("kpis/sla_digest.txt", context),
        settings.DEFAULT_FROM_EMAIL,
        [to],
    )
    message.attach_alternative(render_to_string("kpis/sla_digest.html", context), "text/html")
    return message


def digests_send(*, now: datetime | None = None, force: bool = False) -> int:
    """Sends today's digest (SLA-local day) to each lead that has not had it, once the
    digest hour has come (`force`: whatever the hour). Returns how many were sent."""
    now = now or timezone.now()
    local = now.astimezone(ZoneInfo(settings.SLA_TIME_ZONE))
    if not force and local.hour < settings.SLA_DIGEST_HOUR:
        return 0
    day = local.date()
    leads = list(sla_selectors.leads().exclude(pk__in=_sent_to(day)))
    if not leads:
        return 0
    context = digest_context(now=now)
    sent = 0
    for lead in leads:
        try:
            with transaction.atomic():
                record = SlaDigest.objects.create(user=lead, day=day, sent_at=now)
        except IntegrityError:  # another sender took this lead first
            continue
        try:
            digest_message(to=lead.email, context=context).send()
        except Exception:
            log.exception("digest to %s failed; the next run retries", lead.email)
            SlaDigest.objects.filter(pk=record.pk).delete()
            continue
        sent += 1
    return sent


def _sent_to(day) -> list[int]:
    return list(SlaDigest.objects.filter(day=day).values_list("user_id", flat=True))
