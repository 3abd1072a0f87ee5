"""Seven models leave the reviews app for agents, accounts and core, keeping their tables.

Only Django's model state changes, and the content types follow the models (so permissions
and admin log entries keep pointing at them)."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = {
    "agent": "agents",
    "interaction": "agents",
    "feedbackevent": "agents",
    "reviewerprofile": "accounts",
    "apitoken": "accounts",
    "auditevent": "core",
    "outboxmessage": "core",
}


def _move_content_types(apps, pairs):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, (old, new) in pairs.items():
        # A content type of the new app may exist already (made by post_migrate of an earlier,
        # partial run): the old row wins, as permissions and admin log entries point at it.
        if ContentType.objects.filter(app_label=old, model=model).exists():
            ContentType.objects.filter(app_label=new, model=model).delete()
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def content_types_forwards(apps, schema_editor):
    _move_content_types(apps, {m: ("reviews", app) for m, app in MOVED.items()})


def content_types_backwards(apps, schema_editor):
    _move_content_types(apps, {m: (app, "reviews") for m, app in MOVED.items()})


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('agents', '0001_initial'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('core', '0001_initial'),
        ('kpis', '0003_agent_moved_to_agents'),
        ('retraining', '0003_agent_and_interaction_moved_to_agents'),
        ('reviews', '0005_outbox_and_auto_assign'),
    ]

    operations = [
        # The tables exist already (made by the reviews app): only Django's model state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                    migrations.RemoveConstraint(
                        model_name='agent',
                        name='agent_threshold_in_unit_interval',
                    ),
                    migrations.RemoveConstraint(
                        model_name='agent',
                        name='agent_audit_rate_in_unit_interval',
                    ),
                    migrations.RemoveConstraint(
                        model_name='agent',
                        name='agent_required_reviews_1_or_2',
                    ),
                    migrations.AlterField(
                        model_name='reviewitem',
                        name='agent',
                        field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='review_items', to='agents.agent'),
                    ),
                    migrations.RemoveField(
                        model_name='apitoken',
                        name='user',
                    ),
                    migrations.RemoveIndex(
                        model_name='auditevent',
                        name='audit_target',
                    ),
                    migrations.RemoveIndex(
                        model_name='auditevent',
                        name='audit_actor_time',
                    ),
                    migrations.RemoveIndex(
                        model_name='auditevent',
                        name='audit_time',
                    ),
                    migrations.RemoveIndex(
                        model_name='feedbackevent',
                        name='feedback_agent_day',
                    ),
                    migrations.RemoveIndex(
                        model_name='interaction',
                        name='interaction_agent_day',
                    ),
                    migrations.RemoveConstraint(
                        model_name='interaction',
                        name='interaction_agent_external_id',
                    ),
                    migrations.RemoveConstraint(
                        model_name='interaction',
                        name='interaction_confidence_in_unit_interval',
                    ),
                    migrations.RemoveConstraint(
                        model_name='interaction',
                        name='interaction_sentiment_in_range',
                    ),
                    migrations.AlterField(
                        model_name='reviewitem',
                        name='interaction',
                        field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='review_item', to='agents.interaction'),
                    ),
                    migrations.RemoveIndex(
                        model_name='outboxmessage',
                        name='outbox_due',
                    ),
                    migrations.DeleteModel(
                        name='OutboxMessage',
                    ),
                    migrations.RemoveField(
                        model_name='reviewerprofile',
                        name='user',
                    ),
                    migrations.DeleteModel(
                        name='ApiToken',
                    ),
                    migrations.RemoveField(
                        model_name='auditevent',
                        name='actor',
                    ),
                    migrations.RemoveField(
                        model_name='feedbackevent',
                        name='agent',
                    ),
                    migrations.RemoveField(
                        model_name='feedbackevent',
                        name='interaction',
                    ),
                    migrations.RemoveField(
                        model_name='interaction',
                        name='agent',
                    ),
                    migrations.DeleteModel(
                        name='ReviewerProfile',
                    ),
                    migrations.DeleteModel(
                        name='AuditEvent',
                    ),
                    migrations.DeleteModel(
                        name='FeedbackEvent',
                    ),
                    migrations.DeleteModel(
                        name='Agent',
                    ),
                    migrations.DeleteModel(
                        name='Interaction',
                    ),
            ],
        ),
        migrations.RunPython(content_types_forwards, content_types_backwards),
    ]
