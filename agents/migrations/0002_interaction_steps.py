"""Interaction.steps: the turn's tool calls and results. On PostgreSQL adding a column with a
constant default only writes the catalogue (no table rewrite), and the default stays on the
column for raw SQL writers; existing rows read as []."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='interaction',
            name='steps',
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
    ]
