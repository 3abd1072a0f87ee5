"""Agent and Interaction moved to the agents app (tables stay): the foreign keys point there."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0001_initial'),
        ('retraining', '0002_batches_build_lease_and_membership'),
    ]

    operations = [
        # The tables exist already (made by the reviews app): only Django's model state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                    migrations.AlterField(
                        model_name='exportbatch',
                        name='agent',
                        field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='export_batches', to='agents.agent'),
                    ),
                    migrations.AlterField(
                        model_name='trainingpair',
                        name='agent',
                        field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='training_pairs', to='agents.agent'),
                    ),
                    migrations.AlterField(
                        model_name='trainingpair',
                        name='interaction',
                        field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='training_pairs', to='agents.interaction'),
                    ),
            ],
        ),
    ]
