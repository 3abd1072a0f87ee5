"""The queue browser's "oldest" / "newest" and "confidence" orders read open items from an
index (console.selectors.SORTS), as its "priority" order does from reviewitem_browse_order.
Partial on the statuses the browser lists by default, so decided items cost nothing."""

from django.db import migrations, models

OPEN_OR_CLAIMED = models.Q(("status__in", ["pending", "needs_second_review", "claimed"]))


class Migration(migrations.Migration):

    dependencies = [
        ("reviews", "0006_models_moved_to_their_apps"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(
                condition=OPEN_OR_CLAIMED,
                fields=["source_created_at", "id"],
                name="reviewitem_console_oldest",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(
                condition=OPEN_OR_CLAIMED,
                fields=["confidence", "id"],
                name="reviewitem_console_confidence",
            ),
        ),
    ]
