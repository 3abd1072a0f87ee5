"""The embedded default of `make run`: SQLite, no Redis, the demo seeded. Every page each
demo persona opens first answers 200 there too (the rest of the suite runs on PostgreSQL,
where a backend difference would not show: the reviewer's queue once answered 500 on SQLite
because a statement compiled once per process could not find its datetime parameter)."""

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

PAGES = {
    "lena": ["/queue/", "/queue/decisions/", "/compare/"],
    "admin": [
        "/console/",
        "/console/deadlines/",
        "/console/adjudication/",
        "/kpis/",
        "/kpis/privacy/",
        "/kpis/deadlines/",
        "/compare/manage/",
    ],
    "mia": ["/kpis/", "/exports/", "/compare/regression/"],
}

CHECK = """
import json, os
from django.contrib.auth import get_user_model
from django.test import Client
pages = json.loads(os.environ["PAGES_JSON"])
statuses = {}
for username, urls in pages.items():
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    for url in urls:
        response = client.get(url, follow=True)
        statuses[f"{username} {url}"] = response.status_code
    if username == "lena":  # claim the next item: the review screen, with its due time
        response = client.post("/queue/claim", follow=True)
        statuses["lena claim"] = response.status_code
        statuses["lena review screen"] = "/review/" in response.request["PATH_INFO"]
print(json.dumps(statuses))
"""


def _manage(env, *args):
    done = subprocess.run(  # noqa: S603 (our own manage.py, fixed arguments)
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"manage.py {args[0]}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_demo_pages_answer_on_the_embedded_default(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DEBUG="1", ALLOWED_HOSTS="testserver", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    )
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "seed_demo")
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    env["PAGES_JSON"] = json.dumps(PAGES)
    out = _manage(env, "shell", "-c", f"exec(open({str(script)!r}).read())")

    statuses = json.loads(out.strip().splitlines()[-1])

    assert statuses.pop("lena review screen") is True
    assert statuses == {key: 200 for key in statuses}
    assert len(statuses) == sum(len(urls) for urls in PAGES.values()) + 1
