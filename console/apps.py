"""The review lead's console: assignment, workload, pools, policies, adjudication."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"
