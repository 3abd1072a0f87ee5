"""What a backup holds: the tables in restore order, how groups and permissions travel (by
natural key), and the migration state the archive must share with the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Field, Model

from backup.archive import BackupError, table_member

# The apps whose tables are in the archive; their migration state must match on restore.
PROJECT_APPS = ("core", "accounts", "agents", "reviews", "retraining", "kpis", "evals")
MIGRATION_APPS = ("contenttypes", "auth", *PROJECT_APPS)
GROUP, PERMISSION = "group", "permission"


@dataclass(frozen=True)
class Table:
    """One table of the archive.

    `keep_ids`: rows are restored with their ids (every table except groups and the
    membership tables that point at groups / permissions, whose ids mean nothing elsewhere).
    `replace`: the target's own rows are deleted before loading: rows `migrate` creates
    (the default error taxonomy) or bookkeeping that is only meaningful with the data (KPI
    cursors and runs of an empty database). `refs`: foreign keys written as natural keys.
    """

    model: type[Model]
    keep_ids: bool = True
    replace: bool = False
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def member(self) -> str:
        return table_member(self.label)

    def fields(self) -> list[Field]:
        return [
            f
            for f in self.model._meta.concrete_fields
            if not getattr(f, "generated", False) and (self.keep_ids or not f.primary_key)
        ]

    def key(self, f: Field) -> str:
        return f.name if f.name in self.refs else f.attname

    def keys(self) -> list[str]:
        return [self.key(f) for f in self.fields()]


def tables() -> list[Table]:
    """Every table of the archive, parents before children (the restore order).

    Rubrics come after the reviews their scores belong to (a score points at its review and
    its criterion, a criterion at its rubric version); the evaluation tables after the KPI
    ones: a comparison points at an agent, an interaction and users, a vote at its
    comparison, a regression answer at its run, the review item it answers and its
    comparison.

    KPI tables are included although a full recompute could rebuild the snapshots: they are
    small (rows per agent and day, not per interaction), and alerts and their webhook
    deliveries are history a recompute cannot rebuild (it would raise and send them again).
    Any other model of the project's apps comes after these, so a table added later is in
    the backup unless it is deliberately left out here. Today that adds the task outbox:
    its tasks are idempotent, so a message published again after a restore is harmless.
    Left out: sessions (everyone logs in again), Django admin's change log, content types
    and permissions (made by `migrate`)."""
    from accounts.models import ApiToken, ReviewerProfile
    from agents.models import Agent, FeedbackEvent, Interaction
    from core.models import AuditEvent
    from evals.models import Comparison, ComparisonVote, RegressionAnswer, RegressionRun
    from kpis.models import Alert, AlertDelivery, KpiCursor, KpiRun, KpiSnapshot
    from retraining.models import BatchPair, ExportBatch, TrainingPair
    from reviews.models import Criterion, ErrorCategory, Review, ReviewItem, Rubric, Score

    user = get_user_model()
    listed = [
        Table(Group, keep_ids=False),
        Table(
            Group.permissions.through,
            keep_ids=False,
            refs={"group": GROUP, "permission": PERMISSION},
        ),
        Table(user),
        Table(user.groups.through, keep_ids=False, refs={"group": GROUP}),
        Table(user.user_permissions.through, keep_ids=False, refs={"permission": PERMISSION}),
        Table(ReviewerProfile),
        Table(Agent),
        Table(ErrorCategory, replace=True),
        Table(Interaction),
        Table(FeedbackEvent),
        Table(ReviewItem),
        Table(Review),
        Table(Rubric),
        Table(Criterion),
        Table(Score),
        Table(ApiToken),
        Table(AuditEvent),
        Table(TrainingPair),
        Table(TrainingPair.reviews.through),
        Table(TrainingPair.reviewers.through),
        Table(ExportBatch),
        Table(BatchPair),
        Table(KpiSnapshot),
        Table(KpiCursor, replace=True),
        Table(KpiRun, replace=True),
        Table(Alert),
        Table(AlertDelivery),
        Table(Comparison),
        Table(ComparisonVote),
        Table(RegressionRun),
        Table(RegressionAnswer),
    ]
    known = {t.model for t in listed}
    for app in PROJECT_APPS:
        extra = [
            m
            for m in django_apps.get_app_config(app).get_models(include_auto_created=True)
            if m not in known and m._meta.managed and not m._meta.proxy
        ]
        # A model before the many-to-many tables that point at it.
        extra.sort(key=lambda m: bool(m._meta.auto_created))
        listed += [Table(m) for m in extra]
    return listed


def ref_maps(using: str) -> dict[str, dict[Any, Any]]:
    """The target's (or source's) groups and permissions: natural key → id."""
    permissions = Permission.objects.using(using).values_list(
        "pk", "content_type__app_label", "content_type__model", "codename"
    )
    return {
        GROUP: dict(Group.objects.using(using).values_list("name", "pk")),
        PERMISSION: {(app, model, code): pk for pk, app, model, code in permissions},
    }


def migration_state(using: str) -> dict[str, list[str]]:
    """The applied migrations of every app whose tables the archive holds, sorted."""
    applied = MigrationRecorder(connections[using]).applied_migrations()
    state: dict[str, list[str]] = {app: [] for app in MIGRATION_APPS}
    for app, name in applied:
        if app in state:
            state[app].append(name)
    return {app: sorted(names) for app, names in state.items()}


def check_migrated(using: str) -> None:
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        pending = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise BackupError(
            f"the database is not fully migrated (pending: {pending}); run manage.py migrate"
        )
