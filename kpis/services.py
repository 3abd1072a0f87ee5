"""Writes of the KPI app: recomputing snapshots, and the recompute runs (`KpiRun`, whose
state machine lives here) behind the "recompute now" button, the schedule and the command.
What to recompute comes from `kpis/changes.py`, the statistics from `kpis/stats.py`; after
a recompute the agents' alerts are evaluated (`kpis/alerts.py`, with their webhooks).

Recompute is incremental, idempotent and safe when runs overlap:
- *incremental*: each source table (interactions, feedback, review items, reviews) has a
  cursor; a run reads the rows above it and recomputes every (agent, day) they touch
  (changes.touched_since), plus today and yesterday of agents with open items, whose backlog
  age moves with the clock. The very first run reads everything.
- *idempotent*: an (agent, day) is recomputed from scratch and stored with an upsert;
  rows of versions that no longer have data that day are deleted.
- *overlap*: a run locks its agents (PostgreSQL advisory locks, in id order; SQLite: the
  IMMEDIATE transaction) before its first read and until its write committed, so a second
  run waits and then reads everything the first one saw, and its writes come last. Cursors
  only move forward (`max`), so a slow run finishing late cannot move them back.
- *one pass*: the agents of a run are aggregated together, one GROUP BY per source table
  (stats.scope_stats), in chunks of at most KPI_CHUNK_AGENT_DAYS agent-days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from agents.models import Agent
from core.db import advisory_xact_locks
from core.outbox import outbox_enqueue
from core.transitions import StateMachine, transition
from kpis import changes
from kpis.alerts import alerts_evaluate
from kpis.models import KpiCursor, KpiRun, KpiSnapshot
from kpis.periods import utc_day
from kpis.stats import STEPS, scope_stats

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# pg_advisory_xact_lock(int, int): the first key names the lock space ("KP"), the second the
# agent. Other code using two-key advisory locks must pick a different first key.
LOCK_SPACE = 0x4B50


@dataclass
class RecomputeResult:
    agents: int = 0
    days: int = 0
    rows: int = 0
    alerts_raised: int = 0
    alerts_resolved: int = 0
    scopes: dict[int, set[date]] = field(default_factory=dict)


def _today(now: datetime) -> date:
    return utc_day(now)


# --- cursors ------------------------------------------------------------------------------------


def _overlap() -> timedelta:
    return timedelta(seconds=settings.KPI_CURSOR_OVERLAP_SECONDS)


def cursor_floor(cursor: KpiCursor | None, now: datetime) -> int:
    """The id above which a run reads: the highest id seen by the newest run at least one
    overlap old (see KpiCursor); while every recorded run is younger, the oldest one's."""
    if cursor is None:
        return 0
    entries = sorted(cursor.history or [], key=lambda e: e[0])
    if not entries:
        return cursor.last_id
    limit = _stamp(now - _overlap())
    old = [e for e in entries if e[0] <= limit]
    return int((old[-1] if old else entries[0])[1])


def _stamp(moment: datetime) -> str:
    """A time as text that sorts like the time (UTC, always with microseconds)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _cursors_advance(tops: dict[str, int], started: datetime) -> None:
    """Records this run's highest ids. Keeps the entries within one overlap plus the newest
    older one (the floor of the next runs); `last_id` only grows."""
    limit = _stamp(started - _overlap())
    with transaction.atomic():
        for source, top in tops.items():
            cursor, _ = KpiCursor.objects.select_for_update().get_or_create(source=source)
            entries = sorted([*cursor.history, [_stamp(started), top]], key=lambda e: e[0])
            old = [e for e in entries if e[0] <= limit]
            keep = old[-1:] + [e for e in entries if e[0] > limit]
            cursor.history = keep
            cursor.last_id = max(cursor.last_id, top)
            cursor.save(update_fields=["history", "last_id", "updated_at"])


# --- planning -----------------------------------------------------------------------------------


def plan_incremental(*, now: datetime) -> tuple[dict[int, set[date]], dict[str, int]]:
    """(agent → days to recompute, source → highest id read) since the last run."""
    cursors = {c.source: c for c in KpiCursor.objects.filter(source__in=changes.SOURCES)}
    scopes: dict[int, set[date]] = defaultdict(set)
    tops: dict[str, int] = {}
    for source in changes.SOURCES:
        touched, top = changes.touched_since(source, cursor_floor(cursors.get(source), now))
        tops[source] = top
        for agent_id, day in touched:
            scopes[agent_id].add(day)
    today = _today(now)
    for agent_id in changes.agents_with_open_items():
        scopes[agent_id].update({today, today - timedelta(days=1)})
    return dict(scopes), tops


def plan_range(
    *, now: datetime, agent_ids: list[int] | None = None, since: date | None = None
) -> dict[int, set[date]]:
    """Every day from `since` (default: the agent's first day) to today."""
    today = _today(now)
    ids = agent_ids or list(Agent.objects.order_by("pk").values_list("pk", flat=True))
    scopes = {}
    for agent_id in ids:
        first = since or changes.first_day(agent_id)
        if first is None or first > today:
            continue
        scopes[agent_id] = {first + timedelta(days=i) for i in range((today - first).days + 1)}
    return scopes


# --- recomputing --------------------------------------------------------------------------------


def _store(agent_id: int, days: set[date], rows: dict) -> int:
    """Upserts one agent's rows of `days` and deletes the rows of those days that the new
    statistics no longer have (a version without data any more). In the caller's
    transaction."""
    first, last = min(days), max(days)
    stale = [
        pk
        for pk, version, day in KpiSnapshot.objects.filter(
            agent_id=agent_id, date__gte=first, date__lte=last
        ).values_list("pk", "agent_version", "date")
        if day in days and (version, day) not in rows
    ]
    if stale:
        KpiSnapshot.objects.filter(pk__in=stale).delete()
    KpiSnapshot.objects.bulk_create(
        [
            KpiSnapshot(agent_id=agent_id, agent_version=version, date=day, stats=stats)
            for (version, day), stats in sorted(rows.items(), key=lambda kv: kv[0][::-1])
        ],
        update_conflicts=True,
        unique_fields=["agent", "agent_version", "date"],
        update_fields=["stats", "computed_at"],
        batch_size=1000,
    )
    return len(rows)


def scope_recompute(
    *, scope: dict[int, set[date]], now: datetime, on_step: Callable[[], None] | None = None
) -> int:
    """Recomputes and stores the snapshots of every (agent, day) of `scope`; returns the rows
    written.

    Locks: on PostgreSQL the scope's agents are locked (advisory, in id order) from before
    the first read until the write has committed, so an overlapping run waits and then
    reads everything this one saw; the reads run outside a transaction (each query sees the
    latest commits; progress updates are visible), the write is one transaction. On SQLite
    read and write are one IMMEDIATE transaction, which takes the database's write lock
    first. Raises whatever the database raises.
    """
    scope = {agent_id: days for agent_id, days in scope.items() if days}
    if not scope:
        return 0
    # PostgreSQL: advisory locks on the agents, in id order (two runs never wait on each other
    # in a cycle), held by a transaction on a connection of their own, which stays correct
    # behind a pooler in transaction mode and ends with the process.
    guard = (
        advisory_xact_locks(LOCK_SPACE, scope)
        if connection.vendor == "postgresql"
        else transaction.atomic()
    )
    with guard:
        stats = scope_stats(scope, now=now, on_step=on_step)
        with transaction.atomic():
            written = sum(_store(a, scope[a], stats[a]) for a in sorted(scope))
    if on_step:
        on_step()
    return written


def agent_recompute(*, agent_id: int, days: set[date], now: datetime) -> int:
    """Recomputes one agent's snapshots of `days` (see scope_recompute)."""
    return scope_recompute(scope={agent_id: set(days)}, now=now)


def _chunks(scopes: dict[int, set[date]]) -> list[dict[int, set[date]]]:
    """Agents grouped so that a chunk holds at most KPI_CHUNK_AGENT_DAYS agent-days: one
    chunk is one set of queries, one lock set and one write transaction."""
    chunks: list[dict[int, set[date]]] = []
    size = limit = settings.KPI_CHUNK_AGENT_DAYS
    for agent_id in sorted(scopes):
        days = scopes[agent_id]
        if size + len(days) > limit:
            chunks.append({})
            size = 0
        chunks[-1][agent_id] = days
        size += len(days)
    return chunks


def kpis_recompute(
    *,
    agent_ids: list[int] | None = None,
    since: date | None = None,
    full: bool = False,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RecomputeResult:
    """Recomputes KPI snapshots and then evaluates the alerts of the agents recomputed.

    With no arguments: incremental (the days touched since the last run). With `agent_ids`,
    `since` or `full`: every day from `since` (or the agent's first day) to today; a full run
    of every agent also moves the cursors, as it has read everything. `on_progress(done,
    total)` is called after each step. Raises whatever the database raises; a failed run
    leaves the cursors where they were, so the next run does its days again.
    """
    now = now or timezone.now()
    incremental = not (agent_ids or since or full)
    tops: dict[str, int] = {}
    if incremental:
        scopes, tops = plan_incremental(now=now)
    else:
        if full and not agent_ids and not since:
            # Read before computing: rows committed later are the next run's.
            tops = {s: changes.source_max_id(s) for s in changes.SOURCES}
        scopes = plan_range(now=now, agent_ids=agent_ids, since=since)
    result = RecomputeResult(scopes=scopes)
    chunks = _chunks(scopes)
    total = len(chunks) * (STEPS + 1)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total)

    if on_progress:
        on_progress(0, total)
    for chunk in chunks:
        result.rows += scope_recompute(scope=chunk, now=now, on_step=step)
        result.days += sum(len(days) for days in chunk.values())
        result.agents += len(chunk)
    if tops:
        _cursors_advance(tops, now)
    agents = Agent.objects.filter(Q(pk__in=list(scopes)) | Q(alerts__resolved_at__isnull=True))
    for agent in agents.distinct():
        raised, resolved = alerts_evaluate(agent=agent, now=now)
        result.alerts_raised += raised
        result.alerts_resolved += resolved
    return result


# --- runs (the button, the schedule, the command) -----------------------------------------------


class RunConflict(Exception):
    """The run is no longer in the state this worker read (another worker moved it)."""


RUN_STATES = StateMachine(
    model=KpiRun,
    target_type="kpi_run",
    status_field="state",
    moves={
        (KpiRun.State.QUEUED, KpiRun.State.RUNNING): "kpi_run.started",
        (KpiRun.State.RUNNING, KpiRun.State.RUNNING): "kpi_run.taken_over",  # its worker died
        (KpiRun.State.RUNNING, KpiRun.State.DONE): "kpi_run.done",
        (KpiRun.State.RUNNING, KpiRun.State.FAILED): "kpi_run.failed",
    },
    conflict=RunConflict,
    conflict_message="This run changed in the meantime.",
)


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.KPI_RUN_STALE_SECONDS)


def run_active() -> KpiRun | None:
    """A queued or running run that is not stale (a worker that died leaves one behind)."""
    now = timezone.now()
    return (
        KpiRun.objects.filter(state__in=[KpiRun.State.QUEUED, KpiRun.State.RUNNING])
        .filter(created_at__gte=_stale_before(now))
        .order_by("-created_at")
        .first()
    )


@transaction.atomic
def run_request(
    *,
    trigger: str,
    user: User = None,
    agent: Agent | None = None,
    since: date | None = None,
    full: bool = False,
    enqueue: bool = True,
) -> tuple[KpiRun, bool]:
    """Queues a recompute; returns (run, created). From the button, an active run is
    returned instead of queuing a second one. With `enqueue`, the task is sent after
    commit (so the worker finds the row)."""
    if trigger == KpiRun.Trigger.BUTTON and (active := run_active()) is not None:
        return active, False
    mode = (
        KpiRun.Mode.RANGE
        if (agent or since)
        else KpiRun.Mode.FULL
        if full
        else KpiRun.Mode.INCREMENTAL
    )
    run = KpiRun.objects.create(
        trigger=trigger, mode=mode, agent=agent, since=since, requested_by=user
    )
    if enqueue:
        outbox_enqueue("kpis.tasks.run_recompute", run.pk)
    return run, True


def run_execute(*, run_id: int) -> KpiRun:
    """Runs a queued recompute, recording progress and the outcome on the run.

    The claim is a compare-and-swap queued → running (or a stale running one, left by a
    worker that died), so a redelivered task does not run it twice. Errors are recorded on
    the run and re-raised.
    """
    now = timezone.now()
    run = KpiRun.objects.get(pk=run_id)
    start = {"started_at": now, "done_steps": 0, "error": ""}
    try:
        with transaction.atomic():
            if run.state == KpiRun.State.QUEUED:
                transition(RUN_STATES, run, KpiRun.State.RUNNING, changes=start)
            elif run.state == KpiRun.State.RUNNING and run.started_at < _stale_before(now):
                stale = {"started_at__lt": _stale_before(now)}
                transition(RUN_STATES, run, KpiRun.State.RUNNING, guard=stale, changes=start)
            else:
                return run
    except RunConflict:  # another worker claimed it first
        run.refresh_from_db()
        return run

    def progress(done: int, total: int) -> None:
        KpiRun.objects.filter(pk=run_id).update(done_steps=done, total_steps=total)

    try:
        result = kpis_recompute(
            agent_ids=[run.agent_id] if run.agent_id else None,
            since=run.since,
            full=run.mode == KpiRun.Mode.FULL,
            on_progress=progress,
        )
    except Exception as exc:
        _run_finish(
            run,
            KpiRun.State.FAILED,
            finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}",
        )
        raise
    _run_finish(
        run,
        KpiRun.State.DONE,
        finished_at=timezone.now(),
        days=result.days,
        rows=result.rows,
        alerts_raised=result.alerts_raised,
        alerts_resolved=result.alerts_resolved,
    )
    run.refresh_from_db()
    return run


def _run_finish(run: KpiRun, to: str, **fields: Any) -> None:
    """running → done / failed. A worker that took the run over meanwhile (this one looked
    dead) finishes it too; the run keeps the first outcome recorded."""
    try:
        with transaction.atomic():
            transition(RUN_STATES, run, to, expect=(KpiRun.State.RUNNING,), changes=fields)
    except RunConflict:
        pass


def run_scheduled() -> KpiRun | None:
    """The periodic recompute: skipped while another run is active (it covers the same
    ground; the next tick catches up). Old run records are pruned."""
    if run_active() is not None:
        return None
    run, _ = run_request(trigger=KpiRun.Trigger.SCHEDULE, enqueue=False)
    cutoff = timezone.now() - timedelta(days=settings.KPI_RUN_RETENTION_DAYS)
    KpiRun.objects.filter(created_at__lt=cutoff).exclude(
        state__in=[KpiRun.State.QUEUED, KpiRun.State.RUNNING]
    ).delete()
    return run_execute(run_id=run.pk)


def run_settle() -> KpiRun:
    """The daily catch-all: every day of the last KPI_SETTLE_DAYS of every agent, whatever
    the cursors say (a row committed later than the cursor overlap would otherwise wait for
    another change on its day)."""
    since = _today(timezone.now()) - timedelta(days=max(0, settings.KPI_SETTLE_DAYS - 1))
    run, _ = run_request(trigger=KpiRun.Trigger.SCHEDULE, since=since, enqueue=False)
    return run_execute(run_id=run.pk)
