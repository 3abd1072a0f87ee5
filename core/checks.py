"""System checks of deployment mistakes that would otherwise surface as a 500 on every page."""

from pathlib import Path

from django.conf import settings
from django.core.checks import Warning, register

MANIFEST = "staticfiles.json"


@register()
def static_manifest(app_configs, **kwargs) -> list[Warning]:
    """With the manifest storage (DEBUG off), pages need `collectstatic`'s manifest."""
    backend = settings.STORAGES["staticfiles"]["BACKEND"]
    if "Manifest" not in backend or (Path(settings.STATIC_ROOT) / MANIFEST).is_file():
        return []
    return [
        Warning(
            f"{settings.STATIC_ROOT}/{MANIFEST} is missing: with DEBUG off every page fails "
            "until the static files are collected.",
            hint="Run `manage.py collectstatic --noinput` (README, Configuration).",
            id="core.W001",
        )
    ]
