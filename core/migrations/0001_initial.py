"""Models move here from the reviews app, keeping their tables."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('reviews', '0005_outbox_and_auto_assign'),
    ]

    operations = [
        # The tables exist already (made by the reviews app): only Django's model state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                    migrations.CreateModel(
                        name='OutboxMessage',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('task', models.CharField(max_length=200)),
                            ('args', models.JSONField(blank=True, default=list)),
                            ('created_at', models.DateTimeField(auto_now_add=True)),
                            ('attempts', models.PositiveIntegerField(default=0)),
                            ('next_attempt_at', models.DateTimeField()),
                            ('last_error', models.CharField(blank=True, default='', max_length=500)),
                        ],
                        options={
                            'db_table': 'reviews_outboxmessage',
                            'indexes': [models.Index(fields=['next_attempt_at'], name='outbox_due')],
                        },
                    ),
                    migrations.CreateModel(
                        name='AuditEvent',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('action', models.CharField(max_length=64)),
                            ('target_type', models.CharField(max_length=64)),
                            ('target_id', models.BigIntegerField(null=True)),
                            ('before', models.JSONField(blank=True, default=dict)),
                            ('after', models.JSONField(blank=True, default=dict)),
                            ('created_at', models.DateTimeField(auto_now_add=True)),
                            ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ],
                        options={
                            'db_table': 'reviews_auditevent',
                            'ordering': ['-created_at', '-pk'],
                            'indexes': [models.Index(fields=['target_type', 'target_id'], name='audit_target'), models.Index(fields=['actor', 'created_at'], name='audit_actor_time'), models.Index(fields=['created_at'], name='audit_time')],
                        },
                    ),
            ],
        ),
    ]
