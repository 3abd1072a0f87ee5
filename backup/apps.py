"""One archive of the data, and its all-or-nothing restore."""

from django.apps import AppConfig


class BackupConfig(AppConfig):
    name = "backup"
    verbose_name = "Backup"
