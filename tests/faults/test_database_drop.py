"""The web process loses its database connection in the middle of a request.

A real server (pytest-django's live server thread) handles a reviewer's decision; the test
holds the item's row lock so the request waits inside `review_submit`, then terminates that
backend with pg_terminate_backend (what a PostgreSQL restart or failover does). The request
answers a clean 503 that gives the typed decision back, the next request works, and sending
the decision again saves it.
"""

import threading
import time
from html.parser import HTMLParser

import psycopg
import pytest
import requests
from django.db import connection

from accounts import services as account_services
from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import ReviewItemFactory

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

CORRECTION = 'Refunds take 5 days. <script>alert("x")</script> Thanks for waiting!'


class _Forms(HTMLParser):
    """The fields of the first form on a page that posts somewhere (what a browser sends)."""

    def __init__(self):
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.action = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method") == "post" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("name"):
            self.fields.append((attrs["name"], attrs.get("value") or ""))
        elif tag == "textarea":
            self._textarea, self._text = attrs["name"], ""

    def handle_data(self, data):
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text))
            self._textarea = None


def db_dsn() -> str:
    s = connection.settings_dict
    return f"host={s['HOST']} port={s['PORT'] or 5432} user={s['USER']} dbname={s['NAME']}"


def _login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base}/accounts/login/")
    response = session.post(
        f"{base}/accounts/login/",
        data={
            "username": username,
            "password": "pw-for-tests",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert response.status_code == 200 and "Log out" in response.text
    return session


def terminate_waiting_backend(
    locker: psycopg.Connection, still_running=lambda: True, timeout: float = 60
) -> int:
    """Terminates the backend that waits for the lock `locker` holds; returns its pid.
    `still_running()` turning false means the request ended without reaching the row."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not still_running():
            pytest.fail("the request ended before it reached the locked row")
        # pg_stat_activity is read once per transaction unless the snapshot is cleared.
        locker.execute("SELECT pg_stat_clear_snapshot()")
        row = locker.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        ).fetchone()
        if row:
            locker.execute("SELECT pg_terminate_backend(%s)", [row[0]])
            return row[0]
        time.sleep(0.05)
    activity = locker.execute(
        "SELECT pid, state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity "
        "WHERE datname = current_database()"
    ).fetchall()
    pytest.fail(f"the request never reached the locked row: {activity}")


@pytest.fixture
def claimed(transactional_db, reviewer, settings):
    # Plain-HTTP test server: `requests` (unlike a browser on localhost) sends no Secure
    # cookies over http.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    ReviewItemFactory(interaction__agent__slug="support-bot", interaction__output="Refunds: 3d.")
    return services.item_claim(reviewer=reviewer)


def _while_terminated(item_id: int, send):
    """Runs `send()` in a thread while the item row is locked, kills the backend that waits
    for it, releases the lock and returns send's response."""
    result = {}
    with psycopg.connect(db_dsn()) as locker:
        locker.execute("SELECT id FROM reviews_reviewitem WHERE id = %s FOR UPDATE", [item_id])
        thread = threading.Thread(target=lambda: result.update(response=send()))
        thread.start()
        terminate_waiting_backend(locker, thread.is_alive)
        locker.rollback()
    thread.join(timeout=60)
    return result["response"]


def test_a_decision_interrupted_by_a_dropped_connection_comes_back_filled(
    live_server, reviewer, claimed
):
    base = live_server.url.replace("localhost", "127.0.0.1")  # requests drops localhost cookies
    session = _login(base, reviewer.username)
    page = session.get(f"{base}/review/{claimed.pk}/")
    assert page.status_code == 200
    decision = {
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "verdict": "correct",
        "corrected_output": CORRECTION,
        "notes": "Policy changed in May.\nSee the wiki.",
        "version": str(ReviewItem.objects.get(pk=claimed.pk).version),
    }
    decide_url = f"{base}/review/{claimed.pk}/decide"

    response = _while_terminated(
        claimed.pk,
        lambda: session.post(decide_url, data=decision, headers={"Referer": decide_url}),
    )

    # A clean page, not a crash: 503, retry hint, nothing saved, the typed text given back
    # (escaped: agent and reviewer text is never markup).
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "Nothing was saved" in response.text
    assert "&lt;script&gt;" in response.text and "<script>alert" not in response.text
    assert not Review.objects.exists()
    form = _Forms()
    form.feed(response.text)
    typed = dict(form.fields)
    assert typed["corrected_output"] == CORRECTION
    assert typed["notes"] == decision["notes"]
    assert typed["verdict"] == "correct"
    assert form.action == f"/review/{claimed.pk}/decide"

    # The next request works (a fresh connection), and "Send again" saves the decision.
    assert session.get(f"{base}/queue/").status_code == 200
    again = session.post(base + form.action, data=form.fields, headers={"Referer": decide_url})
    assert again.status_code == 200
    review = Review.objects.get(item_id=claimed.pk)
    assert (review.verdict, review.corrected_output, review.reviewer_id) == (
        "correct",
        CORRECTION,
        reviewer.pk,
    )


def test_an_api_decision_interrupted_by_a_dropped_connection_answers_503_json(
    live_server, reviewer, claimed
):
    token = account_services.token_create(user=reviewer, name="faults")[1]
    headers = {"Authorization": f"Bearer {token}"}
    base = live_server.url.replace("localhost", "127.0.0.1")
    url = f"{base}/api/v1/items/{claimed.pk}/decision"
    body = {"verdict": "approve", "notes": "fine"}

    def send():
        return requests.post(url, json=body, headers=headers, timeout=60)

    assert requests.get(f"{base}/healthz", timeout=60).status_code == 200  # URLconf loaded

    response = _while_terminated(claimed.pk, send)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "nothing was saved" in response.json()["detail"]
    assert not Review.objects.exists()
    retry = send()
    assert retry.status_code == 200, retry.text
    assert Review.objects.get(item_id=claimed.pk).verdict == "approve"
