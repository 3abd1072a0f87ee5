"""Agent moved to the agents app (its table stays): the foreign keys point there."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0001_initial'),
        ('kpis', '0002_stats_runs_cursors_deliveries'),
    ]

    operations = [
        # The tables exist already (made by the reviews app): only Django's model state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                    migrations.AlterField(
                        model_name='alert',
                        name='agent',
                        field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alerts', to='agents.agent'),
                    ),
                    migrations.AlterField(
                        model_name='kpirun',
                        name='agent',
                        field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, to='agents.agent'),
                    ),
                    migrations.AlterField(
                        model_name='kpisnapshot',
                        name='agent',
                        field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='kpi_snapshots', to='agents.agent'),
                    ),
            ],
        ),
    ]
