"""Validation, readers and the bulk pipeline behind the ingest API and commands."""

from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    verbose_name = "Ingest"
