"""The role groups of DESIGN.md and the starting error taxonomy (admins may extend it)."""

from django.db import migrations

ROLES = ["reviewer", "admin", "ml", "agent"]
CATEGORIES = [
    ("wrong-intent", "Wrong intent", "The agent misunderstood what the user asked."),
    ("factual-error", "Factual error", "A statement in the answer is false."),
    (
        "policy-legal-risk",
        "Policy / legal risk",
        "The answer breaks policy or creates legal exposure.",
    ),
    ("tone", "Tone", "Correct content, wrong register or attitude."),
    ("incomplete", "Incomplete", "The answer leaves out something the user needs."),
    ("hallucination", "Hallucination", "The answer invents products, laws, links or facts."),
    ("formatting", "Formatting", "Hard to read: structure, length or markup problems."),
    ("other", "Other", "Anything else; say what in the notes."),
]


def forwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    ErrorCategory = apps.get_model("reviews", "ErrorCategory")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    for position, (slug, name, description) in enumerate(CATEGORIES):
        ErrorCategory.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
