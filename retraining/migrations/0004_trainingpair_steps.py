"""TrainingPair.steps: the interaction's tool calls and results, copied at decision time like
its context. A constant default: no table rewrite on PostgreSQL; existing pairs read as []
(their interactions had no steps either)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('retraining', '0003_agent_and_interaction_moved_to_agents'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingpair',
            name='steps',
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
    ]
