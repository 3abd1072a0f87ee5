"""Two tasks moved with their apps: messages still waiting in the outbox name the new tasks."""

from django.db import migrations

RENAMED = {
    "reviews.tasks.items_autoassign": "console.tasks.items_autoassign",
    "reviews.tasks.outbox_sweep": "core.tasks.outbox_sweep",
}


def _rename(apps, names):
    OutboxMessage = apps.get_model("core", "OutboxMessage")
    for old, new in names.items():
        OutboxMessage.objects.filter(task=old).update(task=new)


def forwards(apps, schema_editor):
    _rename(apps, RENAMED)


def backwards(apps, schema_editor):
    _rename(apps, {new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
