"""The role groups of DESIGN.md and the starting error taxonomy (admins may extend it)."""

from django.db import migrations

from reviews.defaults import ensure_defaults

ROLES = ("reviewer", "admin", "ml", "agent")  # accounts.models.Role when this was written


def forwards(apps, schema_editor):
    for name in ROLES:
        apps.get_model("auth", "Group").objects.get_or_create(name=name)
    ensure_defaults(apps.get_model("reviews", "ErrorCategory"))


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
