"""Personal data redaction (issue 16): the agent's policy, the interaction's counts per kind
(constant database defaults: only the catalogue is written, raw SQL writers need not know
the columns) and the conversations' placeholder mappings."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_interaction_steps'),
    ]

    operations = [
        migrations.AddField(
            model_name='agent',
            name='redaction',
            field=models.JSONField(blank=True, db_default={}, default=dict, help_text='e.g. {"types": ["email", "phone", "iban", "card"], "patterns": [{"name": "CASE_ID", "regex": "CASE-[0-9]{6}"}], "keep_originals": true, "regions": ["GB"]}'),
        ),
        migrations.AddField(
            model_name='interaction',
            name='redactions',
            field=models.JSONField(blank=True, db_default={}, default=dict),
        ),
        migrations.CreateModel(
            name='RedactedValue',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('conversation_key', models.CharField(max_length=260)),
                ('kind', models.CharField(max_length=40)),
                ('number', models.PositiveIntegerField()),
                ('digest', models.CharField(max_length=64)),
                ('original', models.TextField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('agent', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, to='agents.agent')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('agent', 'conversation_key', 'digest'), name='redactedvalue_digest')],
            },
        ),
    ]
