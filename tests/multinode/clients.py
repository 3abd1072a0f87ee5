"""The reviewers' HTTP clients of the multi-node test: a round-robin balancer that fails
over when a node dies, and reviewer threads that claim and decide until the queue is empty.

A decision carries the item `version` its claim returned. Sent again after a dropped
connection, it is saved if the first attempt was not (the reviewer still holds that
version), and refused with 409 if it was (the item moved on): never saved twice.
"""

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Sent:
    response: requests.Response
    node: str
    # Earlier attempts that failed on the network, and whether one of them may have reached
    # its node (a dropped connection, not a refused one): then the request may have been
    # carried out although no answer came back.
    failed_on: list[str]
    maybe_done: bool


class Balancer:
    """The reviewers' way in: round-robin over the web nodes. A node that refuses or drops a
    connection is taken out of the rotation and the request goes to the next node (a load
    balancer's passive health check); a 503 (the database went away for a moment, nothing
    was saved) is sent again after a pause."""

    def __init__(self, nodes: dict[str, str]) -> None:
        self.nodes = nodes
        self.down: dict[str, float] = {}
        self.failovers: list[tuple[str, str, str]] = []  # (node, request, error)
        self.served: Counter[str] = Counter()  # answers by node
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def _pick(self) -> str:
        with self._lock:
            live = [name for name in self.nodes if name not in self.down]
            if not live:
                raise AssertionError(f"every node is down: {self.failovers}")
            return live[next(self._turn) % len(live)]

    def send(self, session: requests.Session, method: str, path: str, token: str, body=None):
        failed_on: list[str] = []
        maybe_done = False
        for _ in range(10):
            node = self._pick()
            try:
                response = session.request(
                    method, self.nodes[node] + path, json=body, headers=bearer(token), timeout=60
                )
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                refused = "refused" in str(exc).lower()
                maybe_done = maybe_done or not refused
                failed_on.append(node)
                with self._lock:
                    self.down.setdefault(node, time.monotonic())
                    self.failovers.append((node, f"{method} {path}", type(exc).__name__))
                continue
            with self._lock:
                self.served[node] += 1
            if response.status_code == 503:
                time.sleep(0.5)
                continue
            return Sent(response, node, failed_on, maybe_done)
        raise AssertionError(f"{method} {path} failed on every attempt: {failed_on}")


def verdict_for(item: dict) -> dict[str, Any]:
    """What a reviewer decides, fixed by the interaction (so both reviewers of a four-eyes
    item agree): mostly approvals, some corrections, a few rejections."""
    interaction = item["interaction"]
    n = int(interaction["external_id"].rsplit("-", 1)[1])
    if n % 7 == 3:
        corrected = interaction["output"] + " Sorry for the wait."
        return {"verdict": "correct", "corrected_output": corrected}
    if n % 11 == 5:
        return {"verdict": "reject"}
    return {"verdict": "approve"}


@dataclass
class Decision:
    reviewer: str
    item: int
    version: int
    verdict: str
    status: int
    node: str
    failed_on: list[str]
    maybe_done: bool
    at: float  # time.monotonic() when the answer came

    @property
    def saved(self) -> bool:
        """The client may take the decision as saved: a 2xx, or a 409 to a retry of a
        request that may have been carried out (the item then moved on, so the `version`
        it sends no longer matches and nothing is saved twice)."""
        return 200 <= self.status < 300 or (self.status == 409 and self.maybe_done)


@dataclass
class ReviewRun:
    """Reviewer threads that claim and decide until the queue has nothing for them."""

    balancer: Balancer
    tokens: dict[str, str]
    agent: str | None = None
    budget: int | None = None  # stop after this many decisions (None: the whole queue)
    claims: list[tuple[str, int, int]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    killed_at: float | None = None  # when node A was killed (the review run)
    rounds: int = 1  # runs until the queue was empty (lost claims come back later)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take(self) -> bool:
        with self._lock:
            if self.budget is None:
                return True
            if self.budget <= 0:
                return False
            self.budget -= 1
            return True

    def saved(self) -> int:
        with self._lock:
            return sum(d.saved for d in self.decisions)

    def work(self, reviewer: str) -> None:
        token = self.tokens[reviewer]
        session = requests.Session()
        claim_body = {"agent": self.agent} if self.agent else {}
        while self._take():
            sent = self.balancer.send(session, "POST", "/api/v1/queue/claim", token, claim_body)
            if sent.response.status_code == 204:
                return
            if sent.response.status_code != 200:
                self.errors.append(f"claim: {sent.response.status_code} {sent.response.text}")
                return
            item = sent.response.json()["item"]
            with self._lock:
                self.claims.append((reviewer, item["id"], item["version"]))
            # The version read: a retry of this decision cannot be applied to a later claim.
            body = {**verdict_for(item), "version": item["version"], "seconds_spent": 5}
            path = f"/api/v1/items/{item['id']}/decision"
            sent = self.balancer.send(session, "POST", path, token, body)
            decision = Decision(
                reviewer,
                item["id"],
                item["version"],
                body["verdict"],
                sent.response.status_code,
                sent.node,
                sent.failed_on,
                sent.maybe_done,
                time.monotonic(),
            )
            with self._lock:
                self.decisions.append(decision)
            if not decision.saved:
                self.errors.append(
                    f"{reviewer} item {item['id']}: {sent.response.status_code} "
                    f"{sent.response.text} (failed on {sent.failed_on})"
                )
                return

    def run(self, reviewers: list[str], while_running=None) -> None:
        threads = [
            threading.Thread(target=self._guarded, args=(name,), name=name) for name in reviewers
        ]
        for thread in threads:
            thread.start()
        try:
            if while_running is not None:
                while_running(self)
        finally:
            for thread in threads:
                thread.join(timeout=180)
        assert not any(t.is_alive() for t in threads), "a reviewer thread hangs"
        assert not self.errors, self.errors

    def _guarded(self, reviewer: str) -> None:
        try:
            self.work(reviewer)
        except Exception as exc:  # reported by run(), in the test's thread
            self.errors.append(f"{reviewer}: {exc!r}")
