"""The plumbing every app uses: audit log, outbox, HTTP limits, errors, health."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import checks  # noqa: F401 (registers the system checks)
