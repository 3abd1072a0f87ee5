"""Agent, Interaction and FeedbackEvent move here from the reviews app, keeping their tables."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('reviews', '0005_outbox_and_auto_assign'),
    ]

    operations = [
        # The tables exist already (made by the reviews app): only Django's model state moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                    migrations.CreateModel(
                        name='Agent',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('slug', models.SlugField(max_length=64, unique=True)),
                            ('name', models.CharField(max_length=200)),
                            ('kind', models.CharField(choices=[('chat', 'Chat'), ('recommender', 'Recommender'), ('other', 'Other')], default='other', max_length=20)),
                            ('domain', models.SlugField(default='general', help_text="Review domain of this agent's items when an interaction names none.", max_length=100)),
                            ('confidence_threshold', models.FloatField(default=0.7, help_text='Responses below this confidence are queued for review.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                            ('audit_rate', models.FloatField(default=0.02, help_text='Share of confident responses sampled for review.', validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                            ('required_reviews', models.PositiveSmallIntegerField(choices=[(1, 'One reviewer'), (2, 'Two agreeing reviewers (four-eyes)')], default=1)),
                            ('review_intents', models.JSONField(blank=True, default=list, help_text='Intents that are always reviewed.')),
                            ('review_domains', models.JSONField(blank=True, default=list, help_text='Domains that are always reviewed.')),
                            ('guidelines', models.TextField(blank=True, help_text='Markdown shown to reviewers.')),
                            ('auto_assign', models.BooleanField(db_default=False, default=False, help_text="Routed items are spread over the active reviewers of their domain as they arrive (up to each reviewer's daily capacity); the rest wait in the shared queue.")),
                            ('alert_thresholds', models.JSONField(blank=True, default=dict, help_text='KPI alert thresholds, e.g. {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}')),
                            ('created_at', models.DateTimeField(auto_now_add=True)),
                        ],
                        options={
                            'db_table': 'reviews_agent',
                            'ordering': ['slug'],
                            'constraints': [models.CheckConstraint(condition=models.Q(('confidence_threshold__gte', 0), ('confidence_threshold__lte', 1)), name='agent_threshold_in_unit_interval'), models.CheckConstraint(condition=models.Q(('audit_rate__gte', 0), ('audit_rate__lte', 1)), name='agent_audit_rate_in_unit_interval'), models.CheckConstraint(condition=models.Q(('required_reviews__in', [1, 2])), name='agent_required_reviews_1_or_2')],
                        },
                    ),
                    migrations.CreateModel(
                        name='Interaction',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('external_id', models.CharField(max_length=255)),
                            ('agent_version', models.CharField(blank=True, default='', max_length=100)),
                            ('conversation_id', models.CharField(blank=True, default='', max_length=255)),
                            ('input', models.TextField()),
                            ('context', models.JSONField(blank=True, default=list)),
                            ('output', models.TextField()),
                            ('confidence', models.FloatField()),
                            ('intent', models.CharField(blank=True, default='', max_length=100)),
                            ('domain', models.CharField(blank=True, default='', max_length=100)),
                            ('resolved', models.BooleanField(null=True)),
                            ('escalated', models.BooleanField(null=True)),
                            ('sentiment', models.FloatField(null=True)),
                            ('turns', models.PositiveIntegerField(null=True)),
                            ('metadata', models.JSONField(blank=True, default=dict)),
                            ('created_at', models.DateTimeField()),
                            ('ingested_at', models.DateTimeField(auto_now_add=True)),
                            ('agent', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='interactions', to='agents.agent')),
                        ],
                        options={
                            'db_table': 'reviews_interaction',
                        },
                    ),
                    migrations.CreateModel(
                        name='FeedbackEvent',
                        fields=[
                            ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                            ('kind', models.CharField(choices=[('clicked', 'Clicked'), ('skipped', 'Skipped'), ('thumbs_up', 'Thumbs Up'), ('thumbs_down', 'Thumbs Down'), ('resolved', 'Resolved'), ('escalated', 'Escalated')], max_length=20)),
                            ('item_ref', models.CharField(blank=True, default='', max_length=255)),
                            ('value', models.FloatField(null=True)),
                            ('created_at', models.DateTimeField()),
                            ('dedupe_key', models.CharField(max_length=64, unique=True)),
                            ('agent', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='feedback', to='agents.agent')),
                            ('interaction', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='feedback', to='agents.interaction')),
                        ],
                        options={
                            'db_table': 'reviews_feedbackevent',
                        },
                    ),
                    migrations.AddIndex(
                        model_name='interaction',
                        index=models.Index(fields=['agent', 'created_at'], name='interaction_agent_day'),
                    ),
                    migrations.AddConstraint(
                        model_name='interaction',
                        constraint=models.UniqueConstraint(fields=('agent', 'external_id'), name='interaction_agent_external_id'),
                    ),
                    migrations.AddConstraint(
                        model_name='interaction',
                        constraint=models.CheckConstraint(condition=models.Q(('confidence__gte', 0), ('confidence__lte', 1)), name='interaction_confidence_in_unit_interval'),
                    ),
                    migrations.AddConstraint(
                        model_name='interaction',
                        constraint=models.CheckConstraint(condition=models.Q(('sentiment__isnull', True), models.Q(('sentiment__gte', -1), ('sentiment__lte', 1)), _connector='OR'), name='interaction_sentiment_in_range'),
                    ),
                    migrations.AddIndex(
                        model_name='feedbackevent',
                        index=models.Index(fields=['agent', 'created_at'], name='feedback_agent_day'),
                    ),
            ],
        ),
    ]
