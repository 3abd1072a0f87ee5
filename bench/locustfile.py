"""The load itself, for bench/load.py: reviewers working the queue through the real pages and
an agent pipeline streaming interactions into the ingest API.

bench/load.py runs this as a separate process (locust is gevent-based):
`python -m locust -f bench/locustfile.py --headless ...`, configured by LOAD_* variables.
Every reviewer logs each item the server handed it (`claim`) and each decision the server
acknowledged or refused (`decision`); every ingest request logs what the API answered
(`ingest`). Every request is logged with its exact time (`requests.jsonl`), so the
orchestrator computes exact percentiles and counts instead of relying on locust's rounded
statistics.

The measured window opens once every reviewer is logged in; its edges are written as files
(`window-<k>.start` / `.end`) for the orchestrator's CPU sampler, and `window-<k>.logged`
once every request started in the window has been answered and logged. With LOAD_STEPPED=1
(the orchestrator's --find-max-rate) there is one window per step: step k waits for the file
`step-<k>.rate` from the orchestrator, streams at that rate for LOAD_SETTLE seconds, then
measures LOAD_DURATION seconds; `steps.stop` ends the run.

A reviewer is what a browser does with the pages:
- log in: GET /accounts/login/, POST it with the CSRF token of the form;
- "My queue": GET /queue/, then "Start reviewing" (POST /queue/claim) → 302 to the item;
- the review screen: GET /review/<id>/, think, then one verdict button of the decision form
  with every field of the form (CSRF token, version, the corrected answer, ...);
- plain reviewers (no JavaScript) get a 302 to the next item (already claimed for them) or to
  the queue; htmx reviewers send HX-Request and get the next item's screen in the answer, as
  the page does with JavaScript (and post the live diff once while correcting).
"""

from __future__ import annotations

import html
import itertools
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import gevent
from gevent.event import Event
from locust import FastHttpUser, events, task
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import make_interaction, reviewer_name  # noqa: E402

RESULTS = Path(os.environ.get("LOAD_RESULTS_DIR") or "locust-results")
TOKEN = os.environ.get("LOAD_TOKEN", "")
PASSWORD = os.environ.get("LOAD_PASSWORD", "")
INGEST_RATE = float(os.environ.get("LOAD_INGEST_RATE", "500"))
INGEST_BATCH = int(os.environ.get("LOAD_INGEST_BATCH", "50"))
INGEST_USERS = int(os.environ.get("LOAD_INGEST_USERS", "5"))
REVIEWERS = int(os.environ.get("LOAD_REVIEWERS", "50"))
DURATION = float(os.environ.get("LOAD_DURATION", "120"))
LOGIN_TIMEOUT = float(os.environ.get("LOAD_LOGIN_TIMEOUT", "300"))
THINK = (
    float(os.environ.get("LOAD_THINK_MIN", "0.5")),
    float(os.environ.get("LOAD_THINK_MAX", "2.0")),
)
HTMX_SHARE = float(os.environ.get("LOAD_HTMX_SHARE", "0.5"))
SEED = int(os.environ.get("LOAD_SEED", "1"))
STEPPED = os.environ.get("LOAD_STEPPED") == "1"
SETTLE = float(os.environ.get("LOAD_SETTLE", "0"))
MIX = [
    (verdict, float(share))
    for verdict, share in (
        part.split("=")
        for part in os.environ.get("LOAD_MIX", "approve=0.6,correct=0.2,reject=0.2").split(",")
    )
]
QUEUE_VISIT_SHARE = 0.1  # after a decision, sometimes back to "My queue" first
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HTMX = {**FORM, "HX-Request": "true"}

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_REVIEW_URL = re.compile(r"/review/(\d+)/")
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_TEXTAREA = re.compile(r'<textarea[^>]*name="corrected_output"[^>]*>\n?(.*?)</textarea>', re.S)
_CATEGORIES = re.compile(r'<select[^>]*name="error_category"[^>]*>(.*?)</select>', re.S)
_OPTION = re.compile(r'<option value="([^"]+)"')
_SCREEN_ITEM = re.compile(r'<section id="screen-(\d+)"')
_DECIDED = re.compile(r'data-decided="(\d+)"')


class Recorder:
    """Appends JSON lines: `events.jsonl` (claims, decisions, ingest answers, logins) and
    `requests.jsonl` (every request: name, start time, status, milliseconds)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.events = (directory / "events.jsonl").open("a")
        self.requests = (directory / "requests.jsonl").open("a")

    def event(self, kind: str, **fields) -> None:
        self.events.write(json.dumps({"ev": kind, **fields}) + "\n")

    def request(self, **fields) -> None:
        self.requests.write(json.dumps(fields) + "\n")

    def flush(self) -> None:
        self.events.flush()
        self.requests.flush()


RECORD = Recorder(RESULTS)

# The measured window: it opens once every reviewer has logged in (50 password hashes are a
# burst of CPU that is not "working the queue") and closes DURATION seconds later. Reviewers
# and the ingest stream wait for it; the files `window-<k>.start` / `.end` tell the
# orchestrator's CPU sampler when it opened and closed.
GO = Event()
_logins = {"done": 0, "failed": 0}
STREAM = {"rate": INGEST_RATE, "step": 0}  # what the ingest senders follow


def _step_rate(step: int) -> float | None:
    """The ingest rate of window `step`, or None when the run is over."""
    if not STEPPED:
        return INGEST_RATE if step == 0 else None
    given = RESULTS / f"step-{step}.rate"
    while not given.exists():
        if (RESULTS / "steps.stop").exists():
            return None
        gevent.sleep(0.2)
    return float(given.read_text())


def _clock(environment) -> None:
    deadline = time.time() + LOGIN_TIMEOUT
    while sum(_logins.values()) < REVIEWERS and time.time() < deadline:
        gevent.sleep(0.1)
    for step in itertools.count():
        rate = _step_rate(step)
        if rate is None:
            break
        STREAM.update(rate=rate, step=step)
        if SETTLE:  # the load runs at the step's rate for a while before the window opens
            GO.set()
            gevent.sleep(SETTLE)
        started = time.time()
        RECORD.event("measure_start", t=started, logged_in=_logins["done"], step=step, rate=rate)
        (RESULTS / f"window-{step}.start").write_text(str(started))
        GO.set()
        gevent.sleep(max(0.0, started + DURATION - time.time()))
        ended = time.time()
        RECORD.event("measure_end", t=ended, step=step)
        (RESULTS / f"window-{step}.end").write_text(str(ended))
        # The window's slowest requests are still in flight: its figures wait for them (the
        # client gives up on a request after 60 s anyway).
        while any(t < ended for t in _in_flight.values()) and time.time() < ended + 70:
            gevent.sleep(0.1)
        RECORD.flush()
        (RESULTS / f"window-{step}.logged").write_text(str(time.time()))
    environment.runner.quit()  # stops the users, each at the end of its current step


@events.test_start.add_listener
def _start_clock(environment, **_):
    gevent.spawn(_clock, environment)


@events.request.add_listener
def _log_request(request_type, name, response_time, response, exception, start_time, **_):
    status = getattr(response, "status_code", None) or 0
    RECORD.request(
        t=round(start_time, 4),
        name=f"{request_type} {name}",
        status=status,
        ms=round(response_time, 2),
        error=None if exception is None or status else repr(exception)[:200],
    )


@events.test_stop.add_listener
def _flush_on_stop(**_):
    RECORD.flush()


@events.quitting.add_listener
def _flush_on_quit(**_):
    RECORD.flush()


_ALERT = re.compile(r'role="alert"[^>]*>(.*?)</(?:p|ul|div)>', re.S)


def _problem(text: str) -> str:
    """What a refused decision's page says (its first alert), for the results file."""
    found = _ALERT.search(text)
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1) if found else text[:300]).strip()[:300]


# The server closed a kept-alive connection as the request went out (gunicorn's gthread
# worker closes one whose keep-alive timeout ran out even if a request just arrived on it; a
# starved worker loop widens that window). Nothing reached the view, and browsers resend a
# request that failed this way on a reused connection, so the load does too, once.
_DROPPED = ("HTTPConnectionClosed", "ConnectionResetError", "BrokenPipeError")


_in_flight: dict[int, float] = {}  # start time of every request not yet answered
_request_numbers = itertools.count()


def send(user, method: str, url: str, **kwargs):
    """`user.client.request` with a browser's single resend of a dropped request."""
    number = next(_request_numbers)
    _in_flight[number] = time.time()
    try:
        return _send(user, method, url, **kwargs)
    finally:
        del _in_flight[number]


def _send(user, method: str, url: str, **kwargs):
    response = user.client.request(method, url, **kwargs)
    error = getattr(response, "error", None)
    if response.status_code == 0 and type(error).__name__ in _DROPPED:
        again = user.client.request(method, url, **kwargs)
        RECORD.event(
            "resend",
            user=getattr(user, "username", "ingest"),
            name=f"{method} {kwargs.get('name') or url}",
            error=type(error).__name__,
            status=again.status_code,
            t=time.time(),
        )
        return again
    return response


def _location(response) -> str:
    return response.headers.get("Location") or response.headers.get("location") or ""


class Page:
    """What a reviewer reads off the review screen to fill in the decision form."""

    def __init__(self, item: int, text: str) -> None:
        self.item = item
        start = text.find(f'<form id="decision-{item}"')
        form = text[start : text.find("</form>", start)] if start >= 0 else ""
        self.fields = dict(_HIDDEN.findall(form))
        answer = _TEXTAREA.search(form)
        self.output = html.unescape(answer.group(1)) if answer else ""
        select = _CATEGORIES.search(form)
        self.categories = _OPTION.findall(select.group(1)) if select else []
        self.complete = bool(start >= 0 and self.fields.get("csrfmiddlewaretoken"))


_reviewer_numbers = itertools.count()
_ingest_numbers = itertools.count()


class Reviewer(FastHttpUser):
    """One reviewer; each task run is one step (a page, a claim or a decision), and the wait
    between steps is the think time before a decision, none before following a redirect."""

    weight = 1

    def on_start(self) -> None:
        self.number = next(_reviewer_numbers)
        self.username = reviewer_name(self.number)
        self.rng = random.Random(SEED * 1000 + self.number)
        # HTMX_SHARE of the reviewers, spread evenly over the numbers (0.5: every other one).
        share = HTMX_SHARE
        self.htmx = math.floor((self.number + 1) * share) > math.floor(self.number * share)
        self.holding: int | None = None  # the item the server handed me
        self.page: Page | None = None  # its decision form, once loaded
        self.shown_at = 0.0
        self.pause = 0.0
        try:
            self.login()
        except StopUser:
            _logins["failed"] += 1
            raise
        _logins["done"] += 1
        GO.wait()

    def wait_time(self) -> float:
        pause, self.pause = self.pause, 0.0
        return pause

    def think(self) -> float:
        return self.rng.uniform(*THINK)

    # -- steps ------------------------------------------------------------------------------

    @task
    def step(self) -> None:
        if self.holding is None:
            self.claim_from_queue()
        elif self.page is None:
            self.open_review()
        else:
            self.decide()

    def login(self) -> None:
        t0 = time.time()
        page = send(self, "GET", "/accounts/login/", name="/accounts/login/")
        token = _CSRF.search(page.text or "")
        if page.status_code != 200 or not token:
            RECORD.event("login_failed", user=self.username, status=page.status_code)
            raise StopUser
        body = {
            "csrfmiddlewaretoken": token.group(1),
            "username": self.username,
            "password": PASSWORD,
            "next": "",
        }
        answer = send(
            self,
            "POST",
            "/accounts/login/",
            data=urlencode(body),
            headers=FORM,
            name="/accounts/login/",
            allow_redirects=False,
        )
        if answer.status_code != 302:
            RECORD.event("login_failed", user=self.username, status=answer.status_code)
            raise StopUser
        RECORD.event("login", user=self.username, t0=t0, t1=time.time())

    def claim_from_queue(self) -> None:
        """My queue, then "Start reviewing" (or "Resume" when I hold an item)."""
        queue = send(self, "GET", "/queue/", name="/queue/")
        token = _CSRF.search(queue.text or "")
        if queue.status_code != 200 or not token:
            self.pause = self.think()
            return
        t0 = time.time()
        answer = send(
            self,
            "POST",
            "/queue/claim",
            data=urlencode({"csrfmiddlewaretoken": token.group(1)}),
            headers=FORM,
            name="/queue/claim",
            allow_redirects=False,
        )
        t1 = time.time()
        found = _REVIEW_URL.search(_location(answer)) if answer.status_code == 302 else None
        if found is None:
            if answer.status_code == 302:
                RECORD.event("empty", user=self.username, t=t1)
            self.pause = self.think()
            return
        self.handed(int(found.group(1)), via="queue", t0=t0, t1=t1)

    def handed(self, item: int, *, via: str, t0: float, t1: float) -> None:
        new = item != self.holding
        RECORD.event("claim", user=self.username, item=item, via=via, new=new, t0=t0, t1=t1)
        self.holding, self.page = item, None

    def open_review(self) -> None:
        item = self.holding
        response = send(self, "GET", f"/review/{item}/", name="/review/[id]/")
        page = Page(item, response.text or "") if response.status_code == 200 else None
        if page is None or not page.complete:
            RECORD.event("review_unavailable", user=self.username, item=item,
                         status=response.status_code)  # fmt: skip
            self.holding = None
            self.pause = self.think()
            return
        self.page, self.shown_at = page, time.time()
        self.pause = self.think()

    def decide(self) -> None:
        page = self.page
        verdict = self.rng.choices([v for v, _ in MIX], weights=[w for _, w in MIX])[0]
        form = dict(page.fields)
        form.update(
            verdict=verdict,
            corrected_output=page.output,
            error_category="",
            notes="",
            seconds_spent=str(round(time.time() - self.shown_at)),
        )
        if verdict == "correct":
            form["corrected_output"] = (
                page.output.rstrip() + f" (Corrected by {self.username}: see the policy page.)"
            )
            if self.htmx:  # the live diff the editor posts while typing
                send(
                    self,
                    "POST",
                    f"/review/{page.item}/diff",
                    data=urlencode({**form, "verdict": ""}),
                    headers=HTMX,
                    name="/review/[id]/diff [htmx]",
                )
        if verdict in ("reject", "correct") and page.categories:
            form["error_category"] = self.rng.choice(page.categories)
        if verdict in ("reject", "escalate"):
            form["notes"] = f"{verdict} by {self.username}"
        t0 = time.time()
        response = send(
            self,
            "POST",
            f"/review/{page.item}/decide",
            data=urlencode(form),
            headers=HTMX if self.htmx else FORM,
            name="/review/[id]/decide" + (" [htmx]" if self.htmx else ""),
            allow_redirects=False,
        )
        t1 = time.time()
        status = response.status_code
        text = (response.text or "") if status != 302 else ""
        if self.htmx:
            decided = _DECIDED.search(text) if status == 200 else None
            acked = decided is not None and int(decided.group(1)) == page.item
            next_screen = _SCREEN_ITEM.search(text) if acked else None
        else:
            acked = status == 302
            next_screen = _REVIEW_URL.search(_location(response)) if acked else None
        RECORD.event(
            "decision",
            user=self.username,
            item=page.item,
            verdict=verdict,
            acked=acked,
            status=status,
            t0=t0,
            t1=t1,
            problem=None if acked else _problem(text),
        )
        self.holding, self.page = None, None
        if not acked:
            if status == 0:  # no answer at all: as far as I know I still hold it; reload it
                self.holding = page.item
            self.pause = self.think()
            return
        if next_screen is None:  # "Your queue is clear"
            self.pause = self.think()
            return
        self.handed(int(next_screen.group(1)), via="decision", t0=t0, t1=t1)
        if self.htmx:
            self.page, self.shown_at = Page(self.holding, text), time.time()
            if not self.page.complete:
                self.page = None
            self.pause = self.think()
        if self.rng.random() < QUEUE_VISIT_SHARE:
            # Back to "My queue" first: it offers to resume the item I hold.
            self.page = None
            self.claim_from_queue()


class Ingest(FastHttpUser):
    """The agent pipeline: INGEST_USERS senders POST batches of INGEST_BATCH interactions,
    together STREAM["rate"] interactions/s, each on a fixed schedule. A sender waits for its
    answer, so at most INGEST_USERS requests are in flight: a batch answered late is followed
    at once by the next one due (catching up), and when the server cannot keep up the
    achieved rate drops (and is measured) instead of requests piling up without bound."""

    fixed_count = INGEST_USERS

    def on_start(self) -> None:
        GO.wait()
        self.number = next(_ingest_numbers)
        self.rng = random.Random(SEED * 7919 + self.number)
        self.step: int | None = None
        self.follow_rate()
        self.sequence = itertools.count()
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def follow_rate(self) -> None:
        """A new schedule when the rate changes (a step of --find-max-rate): what a slower
        step left unsent is not caught up at the next step's rate."""
        if self.step == STREAM["step"]:
            return
        self.step = STREAM["step"]
        self.period = INGEST_BATCH * INGEST_USERS / STREAM["rate"]
        # Senders spread over one period, so requests arrive evenly.
        self.due = time.time() + self.period * self.number / INGEST_USERS

    def wait_time(self) -> float:
        # Naps of at most half a second, so a new rate is taken up at once, not a period late.
        return min(0.5, max(0.0, self.due - time.time()))

    @task
    def post_batch(self) -> None:
        self.follow_rate()
        if time.time() < self.due:
            return
        lag = max(0.0, time.time() - self.due)
        self.due += self.period
        batch = [
            make_interaction(self.rng, f"S-{self.number}-{next(self.sequence)}")
            for _ in range(INGEST_BATCH)
        ]
        t0 = time.time()
        response = send(
            self,
            "POST",
            "/api/v1/interactions",
            data=json.dumps(batch),
            headers=self.headers,
            name="/api/v1/interactions",
        )
        t1 = time.time()
        answer = {}
        if response.status_code == 200:
            try:
                answer = json.loads(response.text)
            except ValueError:
                answer = {}
        RECORD.event(
            "ingest",
            sent=len(batch),
            status=response.status_code,
            created=answer.get("created", 0),
            duplicates=answer.get("duplicates", 0),
            errors=len(answer.get("errors", [])),
            t0=t0,
            t1=t1,
            lag=round(lag, 3),
        )
