"""Archives of earlier table layouts: what changed, as data, and the mapping to today's names.

A layout change moves models between apps but keeps their tables and columns: its
migrations only move Django's model state (SeparateDatabaseAndState), plus data migrations
for what names an app label. Or it adds columns whose default every older row takes, or
tables that were not there to hold rows. An archive written before it names its members and
counts by the old labels (or lacks the new columns, or the new tables' members) and is at a
migration state this code has left behind, so the compatibility check alone would refuse
it. Each entry of LEGACY_LAYOUTS says exactly what changed:

`applied`     the migration state of that layout's archives, app by app (an app not listed
              had no migrations yet). Only an archive at exactly this state is mapped;
              any other state gets the usual "migration state differs" error.
`upgrade`     the migrations the change added, whose whole effect on archived rows the
              mapping below reproduces. The mapped archive claims `applied` + `upgrade`,
              which must then equal the database's state, as any archive's must. A
              migration added later that leaves archived rows as they are (an index, a
              new table: see `new_tables`) or gives them a default (see `added`) may join
              `upgrade`; after one that changes them otherwise, a layout-1 archive
              restores only with the code version of the state right after the change
              (restore it there, migrate, back up again).
`moved`       old model label → today's. Renames the members (data/<label>.jsonl) and the
              counts, and the app label in the natural keys of permissions (the content
              types moved with their models).
`values`      values renamed by a data migration of the change, per today's model label
              and column key: old → new.
`added`       columns added by a later migration that joined `upgrade`, per today's model
              label: column key → the value the migration gave existing rows (its default).
              Such columns are declared last on their models (where ADD COLUMN puts them),
              so the mapped manifest lists a table's columns in today's order.
`new_tables`  tables created by a later migration that joined `upgrade`, by today's model
              label: the layout's archives have no member for them (an older database had
              nowhere to keep such rows), so they restore empty. The compatibility check
              expects today's `tables()` without them, the mapped manifest counts 0 rows
              for them, and the load reports 0.

Apart from those added columns the columns did not change, so the column check applies to
the mapped manifest; nor did the table order (renamed, a layout-1 archive's members are in
today's `tables()` order once the new tables are left out), so the archive is still read in
one forward pass: a new table lacks a member, so nothing is read out of order for it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backup.archive import table_member
from backup.tables import MIGRATION_APPS, PERMISSION, Table


@dataclass(frozen=True)
class Layout:
    """An earlier table layout (see the module docstring)."""

    name: str
    applied: Mapping[str, tuple[str, ...]]
    upgrade: Mapping[str, tuple[str, ...]]
    moved: Mapping[str, str]
    values: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    added: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    new_tables: frozenset[str] = frozenset()

    @property
    def renames(self) -> dict[str, str]:
        """Member names: the layout's → today's."""
        return {table_member(old): table_member(new) for old, new in self.moved.items()}

    def matches(self, manifest: dict[str, Any]) -> bool:
        """Whether the archive's migration state is exactly this layout's."""
        for app in MIGRATION_APPS:
            theirs = manifest["migrations"].get(app, {}).get("applied") or []
            if not isinstance(theirs, list) or theirs != list(self.applied.get(app, ())):
                return False
        return True

    def upgrade_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The manifest with today's migration state, member names and count labels."""
        renames = self.renames
        counts = manifest.get("counts")
        counts = counts if isinstance(counts, dict) else {}
        state = {
            app: sorted([*self.applied.get(app, ()), *self.upgrade.get(app, ())])
            for app in MIGRATION_APPS
        }
        return manifest | {
            "migrations": {
                app: {"latest": applied[-1] if applied else None, "applied": applied}
                for app, applied in state.items()
            },
            "counts": {
                **{self._label(label): n for label, n in counts.items()},
                **dict.fromkeys(sorted(self.new_tables), 0),
            },
            "members": [self._upgrade_member(m, renames) for m in manifest["members"]],
        }

    def _upgrade_member(self, member: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
        upgraded = member | {"name": renames.get(member["name"], member["name"])}
        if "model" in member:
            upgraded["model"] = label = self._label(member["model"])
            if isinstance(member.get("fields"), list) and label in self.added:
                upgraded["fields"] = [*member["fields"], *self.added[label]]
        return upgraded

    def archived(self, table: Table) -> bool:
        """Whether the layout's archives have a member for `table` (not a new table)."""
        return table.label not in self.new_tables

    def archived_keys(self, table: Table) -> list[str]:
        """The column keys of `table`'s rows as this layout archived them."""
        added, keys = self.added.get(table.label, {}), table.keys()
        return [key for key in keys if key not in added]

    def _label(self, label: Any) -> Any:
        return self.moved.get(label, label) if isinstance(label, str) else label

    def upgrade_row(self, table: Table, row: dict[str, Any]) -> dict[str, Any]:
        """A row of `table` (keyed as archived, which are today's keys) in today's terms."""
        for key, kind in table.refs.items():
            value = row.get(key)
            if kind == PERMISSION and isinstance(value, list) and len(value) == 3:
                app, model, codename = value
                if f"{app}.{model}" in self.moved:
                    row[key] = [*self.moved[f"{app}.{model}"].split("."), codename]
        for key, renamed in self.values.get(table.label, {}).items():
            if isinstance(row.get(key), str) and row[key] in renamed:
                row[key] = renamed[row[key]]
        for key, default in self.added.get(table.label, {}).items():
            row[key] = copy.deepcopy(default)
        return row


# agents/0002 and retraining/0004: the tool calls and results of an interaction (`steps`),
# copied to its training pair; every older row has none.
_STEPS_UPGRADE = {
    "agents": ("0002_interaction_steps",),
    "retraining": ("0004_trainingpair_steps",),
}
_STEPS_ADDED: dict[str, dict[str, Any]] = {
    "agents.interaction": {"steps": []},
    "retraining.trainingpair": {"steps": []},
}
# reviews/0007 and 0008: indexes only, so archived rows are as they were: every earlier
# layout takes them.
_INDEX_UPGRADE = {"reviews": ("0007_console_sort_indexes", "0008_claim_plan_indexes")}
# reviews/0009 (rubric versions, their criteria and the reviews' scores), evals/0001
# (pairwise comparisons and their votes, regression runs and their answers): new tables,
# which every earlier layout's archive lacks; retraining/0005: the deciding review's rubric
# scores copied to its training pair, none on every older row.
_RUBRICS_UPGRADE = {
    "reviews": ("0009_rubrics",),
    # 0006: the comparisons dataset of export batches (a choice, a check, a wider column):
    # archived rows stay as they are.
    "retraining": ("0005_trainingpair_scores", "0006_comparisons_dataset"),
    "evals": ("0001_initial",),
}
_RUBRICS_ADDED: dict[str, dict[str, Any]] = {"retraining.trainingpair": {"scores": {}}}
_RUBRICS_TABLES = frozenset(
    {
        "reviews.rubric",
        "reviews.criterion",
        "reviews.score",
        "evals.comparison",
        "evals.comparisonvote",
        "evals.regressionrun",
        "evals.regressionanswer",
    }
)


def _merged(*states: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """Migration states (or upgrades) joined app by app, in order."""
    merged: dict[str, tuple[str, ...]] = {}
    for state in states:
        for app, names in state.items():
            merged[app] = (*merged.get(app, ()), *names)
    return merged


def _added(*added: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Added columns joined model by model, in the order the migrations added them."""
    joined: dict[str, dict[str, Any]] = {}
    for columns in added:
        for label, defaults in columns.items():
            joined[label] = {**joined.get(label, {}), **defaults}
    return joined


LEGACY_LAYOUTS = {
    # Before the one-app-per-concern reorganisation: the reviews app held the agents, their
    # interactions and feedback, reviewer profiles, API tokens, the audit log and the outbox.
    "layout-1": Layout(
        name="layout-1",
        applied={
            "contenttypes": ("0001_initial", "0002_remove_content_type_name"),
            "auth": (
                "0001_initial",
                "0002_alter_permission_name_max_length",
                "0003_alter_user_email_max_length",
                "0004_alter_user_username_opts",
                "0005_alter_user_last_login_null",
                "0006_require_contenttypes_0002",
                "0007_alter_validators_add_error_messages",
                "0008_alter_user_username_max_length",
                "0009_alter_user_last_name_max_length",
                "0010_alter_group_name_max_length",
                "0011_update_proxy_permissions",
                "0012_alter_user_first_name_max_length",
            ),
            "reviews": (
                "0001_initial",
                "0002_roles_and_taxonomy",
                "0003_drop_redundant_indexes",
                "0004_ingest_and_browse_indexes",
                "0005_outbox_and_auto_assign",
            ),
            "retraining": ("0001_initial", "0002_batches_build_lease_and_membership"),
            "kpis": ("0001_initial", "0002_stats_runs_cursors_deliveries"),
        },
        # Model state only (tables kept), except reviews/0006, which moves the content types
        # (`moved` maps the permissions' natural keys), and core/0002 (`values`).
        upgrade=_merged(
            {
                "core": ("0001_initial", "0002_outbox_task_names"),
                # 0002 adds the API token's agent scope: archived tokens get its default (below).
                "accounts": ("0001_initial", "0002_apitoken_agent_slugs"),
                "agents": ("0001_initial", *_STEPS_UPGRADE["agents"]),
                "reviews": ("0006_models_moved_to_their_apps",),
                "retraining": (
                    "0003_agent_and_interaction_moved_to_agents",
                    *_STEPS_UPGRADE["retraining"],
                ),
                "kpis": ("0003_agent_moved_to_agents",),
            },
            _INDEX_UPGRADE,
            _RUBRICS_UPGRADE,
        ),
        moved={
            "reviews.agent": "agents.agent",
            "reviews.interaction": "agents.interaction",
            "reviews.feedbackevent": "agents.feedbackevent",
            "reviews.reviewerprofile": "accounts.reviewerprofile",
            "reviews.apitoken": "accounts.apitoken",
            "reviews.auditevent": "core.auditevent",
            "reviews.outboxmessage": "core.outboxmessage",
        },
        # core/0002_outbox_task_names: the tasks moved with their apps.
        values={
            "core.outboxmessage": {
                "task": {
                    "reviews.tasks.items_autoassign": "console.tasks.items_autoassign",
                    "reviews.tasks.outbox_sweep": "core.tasks.outbox_sweep",
                }
            }
        },
        # accounts/0002_apitoken_agent_slugs: tokens made before scopes write for every agent.
        added=_added({"accounts.apitoken": {"agent_slugs": []}}, _STEPS_ADDED, _RUBRICS_ADDED),
        new_tables=_RUBRICS_TABLES,
    ),
}
# After the reorganisation, before `steps`: what layout 1 is mapped onto, but steps.
LEGACY_LAYOUTS["layout-2"] = Layout(
    name="layout-2",
    applied={
        "contenttypes": LEGACY_LAYOUTS["layout-1"].applied["contenttypes"],
        "auth": LEGACY_LAYOUTS["layout-1"].applied["auth"],
        "core": ("0001_initial", "0002_outbox_task_names"),
        "accounts": ("0001_initial", "0002_apitoken_agent_slugs"),
        "agents": ("0001_initial",),
        "reviews": (
            "0001_initial",
            "0002_roles_and_taxonomy",
            "0003_drop_redundant_indexes",
            "0004_ingest_and_browse_indexes",
            "0005_outbox_and_auto_assign",
            "0006_models_moved_to_their_apps",
        ),
        "retraining": (
            "0001_initial",
            "0002_batches_build_lease_and_membership",
            "0003_agent_and_interaction_moved_to_agents",
        ),
        "kpis": (
            "0001_initial",
            "0002_stats_runs_cursors_deliveries",
            "0003_agent_moved_to_agents",
        ),
    },
    upgrade=_merged(_STEPS_UPGRADE, _INDEX_UPGRADE, _RUBRICS_UPGRADE),
    moved={},
    added=_added(_STEPS_ADDED, _RUBRICS_ADDED),
    new_tables=_RUBRICS_TABLES,
)
# After `steps`, before the claim's and the queue browser's indexes (issue 18).
LEGACY_LAYOUTS["layout-3"] = Layout(
    name="layout-3",
    applied=_merged(LEGACY_LAYOUTS["layout-2"].applied, _STEPS_UPGRADE),
    upgrade=_merged(_INDEX_UPGRADE, _RUBRICS_UPGRADE),
    moved={},
    added=_RUBRICS_ADDED,
    new_tables=_RUBRICS_TABLES,
)
# After the indexes of issue 18, before rubrics (reviews/0009, the pairs' `scores`) and the
# evals app in the archive. The code of the evals app's first commits migrated evals but did
# not archive it either: its archives are at this state too, with no evals state at all.
LEGACY_LAYOUTS["layout-4"] = Layout(
    name="layout-4",
    applied=_merged(LEGACY_LAYOUTS["layout-3"].applied, _INDEX_UPGRADE),
    upgrade=_RUBRICS_UPGRADE,
    moved={},
    added=_RUBRICS_ADDED,
    new_tables=_RUBRICS_TABLES,
)


def _every_layout_takes(
    upgrade: dict[str, tuple[str, ...]],
    *,
    added: dict[str, dict[str, Any]] | None = None,
    tables: frozenset[str] = frozenset(),
) -> None:
    """A later migration every layout defined so far lacks: its archives take `upgrade`,
    the default values `added` of its new columns and its `tables` (restored empty)."""
    for name, layout in list(LEGACY_LAYOUTS.items()):
        LEGACY_LAYOUTS[name] = replace(
            layout,
            upgrade=_merged(layout.upgrade, upgrade),
            added=_added(layout.added, added or {}),
            new_tables=layout.new_tables | tables,
        )


# reviews/0010 (review deadlines, issue 16): the deadline rules, breaches and sent digests
# (new tables), and three item columns every older row takes the default of (no deadline,
# nothing escalated). Every earlier layout takes it; archives written after rubrics and
# before it are layout 5.
_DEADLINES_UPGRADE = {"reviews": ("0010_deadlines_sla",)}
_DEADLINES_ADDED: dict[str, dict[str, Any]] = {
    "reviews.reviewitem": {"due_at": None, "sla_level": 0, "sla_near_at": None}
}
_DEADLINES_TABLES = frozenset({"reviews.deadline", "reviews.slabreach", "reviews.sladigest"})
_every_layout_takes(_DEADLINES_UPGRADE, added=_DEADLINES_ADDED, tables=_DEADLINES_TABLES)
LEGACY_LAYOUTS["layout-5"] = Layout(
    name="layout-5",
    applied=_merged(LEGACY_LAYOUTS["layout-4"].applied, _RUBRICS_UPGRADE),
    upgrade=_DEADLINES_UPGRADE,
    moved={},
    added=_DEADLINES_ADDED,
    new_tables=_DEADLINES_TABLES,
)

# accounts/0003 (single sign-on, issue 16): the users' identities at OpenID Connect providers,
# a new table that every earlier layout's archive lacks (it restores empty).
_SSO_UPGRADE = {"accounts": ("0003_sso_identity",)}
_SSO_TABLES = frozenset({"accounts.identity"})
_every_layout_takes(_SSO_UPGRADE, tables=_SSO_TABLES)

# agents/0003 (personal data redaction, issue 16): the agents' policy and the interactions'
# counts (columns every older row takes the default of: no policy, nothing redacted) and the
# conversations' placeholder mappings, a new table every earlier layout's archive lacks.
_REDACTION_UPGRADE = {"agents": ("0003_redaction",)}
_REDACTION_ADDED: dict[str, dict[str, Any]] = {
    "agents.agent": {"redaction": {}},
    "agents.interaction": {"redactions": {}},
}
_REDACTION_TABLES = frozenset({"agents.redactedvalue"})
_every_layout_takes(_REDACTION_UPGRADE, added=_REDACTION_ADDED, tables=_REDACTION_TABLES)


def manifest_upgrade(manifest: dict[str, Any]) -> tuple[dict[str, Any], Layout | None]:
    """The manifest in today's terms and the earlier layout it was written in; a manifest
    that is at no earlier layout's exact state comes back as it is, with None."""
    for layout in LEGACY_LAYOUTS.values():
        if layout.matches(manifest):
            return layout.upgrade_manifest(manifest), layout
    return manifest, None
