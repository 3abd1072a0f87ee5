"""The claim's plan, made independent of table statistics (issue 18).

- `reviewitem_claim_queue` replaces `reviewitem_claim_order` with the claim's full sort key
  (the id last), so the first rows of the index are the claim's answer: no sort of the
  domain's whole queue, which the planner chose on never-analyzed tables.
- `review_item_reviewer` (item, reviewer) replaces the foreign key's index on the item: the
  claim's "not reviewed by me" is one probe of it per candidate visited.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_interaction_steps"),
        ("reviews", "0007_console_sort_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="review",
            index=models.Index(fields=["item", "reviewer"], name="review_item_reviewer"),
        ),
        migrations.AlterField(
            model_name="review",
            name="item",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="reviews",
                to="reviews.reviewitem",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(
                models.F("domain"),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("confidence"),
                models.F("source_created_at"),
                models.F("id"),
                condition=models.Q(("status__in", ["pending", "needs_second_review"])),
                name="reviewitem_claim_queue",
            ),
        ),
        migrations.RemoveIndex(model_name="reviewitem", name="reviewitem_claim_order"),
    ]
