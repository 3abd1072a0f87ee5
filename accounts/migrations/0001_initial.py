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
                        name='ApiToken',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('name', models.CharField(max_length=100)),
                            ('key_hash', models.CharField(max_length=64, unique=True)),
                            ('prefix', models.CharField(help_text='First characters, to recognise a token.', max_length=12)),
                            ('created_at', models.DateTimeField(auto_now_add=True)),
                            ('last_used_at', models.DateTimeField(blank=True, null=True)),
                            ('revoked_at', models.DateTimeField(blank=True, null=True)),
                            ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
                        ],
                        options={
                            'db_table': 'reviews_apitoken',
                            'ordering': ['-created_at'],
                        },
                    ),
                    migrations.CreateModel(
                        name='ReviewerProfile',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('domains', models.JSONField(blank=True, default=list, help_text='Domains this reviewer may review.')),
                            ('daily_capacity', models.PositiveIntegerField(default=200)),
                            ('active', models.BooleanField(default=True, help_text='Away reviewers get no new assignments.')),
                            ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='reviewer_profile', to=settings.AUTH_USER_MODEL)),
                        ],
                        options={
                            'db_table': 'reviews_reviewerprofile',
                        },
                    ),
            ],
        ),
    ]
