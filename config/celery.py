import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("coachdesk")
# The apps reach it as `celery.current_app` (they never import config): the default in
# every thread, not only the one that made it.
app.set_default()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
