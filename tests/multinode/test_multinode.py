"""Coachdesk on several machines (issue 14), on loopback.

Two web nodes and two Celery workers with no shared disk, PgBouncer in transaction mode in
front of a PostgreSQL primary, a streaming replica, an S3 bucket and Redis
(tests/multinode/cluster.py). The scenario, in the order the fixtures below run it:

1. `people`, `queue`: agents, reviewers, an ML engineer and their tokens; a few hundred
   interactions ingested through node A's API, most of them queued for review.
2. `warm_up`: reviewers decide a first share of the queue through both nodes.
3. `first_export`: the ML engineer asks node A for a batch; a worker builds it into the bucket;
   node B serves the download.
4. `review_run`: eight reviewers work the queue round-robin through both nodes; node A is
   SIGKILLed in the middle; the clients send what failed to node B and finish the queue there.
5. `second_export`: the worker building a batch is SIGKILLed in the middle; the sweep hands the
   build to the other worker, which finishes it.

Then the primary's rows are checked: no item claimed twice at once, no decision lost or
doubled; the replica's statistics show it served reads; PgBouncer kept the primary's
connections within its pool.
"""

import hashlib
import itertools
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.multinode.clients import Balancer, ReviewRun, bearer
from tests.multinode.cluster import BUCKET, DATABASE, POOL_SIZE, Cluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.multinode]

SUPPORT_LOW = 240  # support-bot answers below the threshold: one review each
SUPPORT_CONFIDENT = 40  # above it: not queued
LEGAL_LOW = 40  # legal-bot (four-eyes): two agreeing reviews each
WARM_UP_DECISIONS = 40
KILL_NODE_AFTER = 60  # decisions of the review run before node A dies


# --- exports ------------------------------------------------------------------------------------


@dataclass
class Export:
    id: int
    batch: dict[str, Any]  # GET /api/v1/exports/{id} once ready
    body: bytes
    headers: dict[str, str]
    file: str  # its name in storage
    extra: dict[str, Any] = field(default_factory=dict)


def export_request(node_url: str, token: str, **body: Any) -> int:
    response = requests.post(
        f"{node_url}/api/v1/exports", json=body, headers=bearer(token), timeout=60
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def export_wait(node_url: str, token: str, batch_id: int, timeout: float = 120) -> dict:
    """Polls the batch (a fresh connection each time, no cookies: these reads may be served
    by the replica) until it is ready; fails on `failed`."""
    deadline = time.monotonic() + timeout
    batch: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = requests.get(
            f"{node_url}/api/v1/exports/{batch_id}", headers=bearer(token), timeout=30
        )
        assert response.status_code == 200, response.text
        batch = response.json()
        assert batch["status"] != "failed", batch["failure_reason"]
        if batch["status"] == "ready":
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} not ready within {timeout} s: {batch}")


def export_download(node_url: str, token: str, batch: dict) -> tuple[bytes, dict[str, str]]:
    """The file and the app's answer headers (also when the app redirects to a presigned
    address of the bucket, which `requests` follows without the bearer token)."""
    response = requests.get(node_url + batch["download_url"], headers=bearer(token), timeout=60)
    assert response.status_code == 200, response.text
    app_answer = response.history[0] if response.history else response
    return response.content, dict(app_answer.headers)


def stored_name(cluster: Cluster, batch_id: int) -> str:
    rows = cluster.primary_query(
        "SELECT file FROM retraining_exportbatch WHERE id = %s", [batch_id]
    )
    return rows[0][0]


def local_files(cluster: Cluster) -> list[Path]:
    """Every file under any node's or worker's MEDIA_ROOT."""
    members = [*cluster.nodes.values(), *cluster.workers.values(), cluster.beat]
    return [p for m in members if m for p in m.media_root.rglob("*") if p.is_file()]


def builds_received(log: str) -> int:
    return sum(
        "retraining.tasks.build_batch[" in line and "received" in line for line in log.splitlines()
    )


# --- the scenario, step by step -----------------------------------------------------------------


@pytest.fixture(scope="module")
def people(cluster):
    """API tokens of the people tests/multinode/seed.py made after the migrations."""
    return cluster.prepared


def interactions() -> list[dict[str, Any]]:
    made = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    rows = []
    for n in range(SUPPORT_LOW + SUPPORT_CONFIDENT):
        rows.append(
            {
                "external_id": f"support-{n:04d}",
                "agent": "support-bot",
                "agent_version": "v1",
                "input": f"Where is my order #{1000 + n}? It has been a while.",
                "output": f"Order #{1000 + n} ships within {n % 5 + 1} days.",
                "confidence": 0.95 if n >= SUPPORT_LOW else round(0.05 + (n % 60) / 100, 2),
                "created_at": (made + timedelta(seconds=n)).isoformat(),
            }
        )
    for n in range(LEGAL_LOW):
        rows.append(
            {
                "external_id": f"legal-{n:04d}",
                "agent": "legal-bot",
                "input": f"Can I cancel contract C-{n}?",
                "output": f"Contract C-{n} can be cancelled with {n % 3 + 1} months' notice.",
                "confidence": 0.4,
                "created_at": (made + timedelta(seconds=n)).isoformat(),
            }
        )
    return rows


@pytest.fixture(scope="module")
def queue(cluster, people):
    """Ingested through node A's API, 100 per request."""
    node_a = cluster.nodes["node-a"].url
    rows = interactions()
    created = 0
    for start in range(0, len(rows), 100):
        response = requests.post(
            f"{node_a}/api/v1/interactions",
            json=rows[start : start + 100],
            headers=bearer(people["pipeline"]),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.json()["errors"] == []
        created += response.json()["created"]
    assert created == len(rows)
    by_status = dict(
        cluster.primary_query("SELECT status, count(*) FROM reviews_reviewitem GROUP BY status")
    )
    assert by_status == {"pending": SUPPORT_LOW + LEGAL_LOW}
    return rows


def balancer_for(cluster: Cluster) -> Balancer:
    return Balancer({name: node.url for name, node in cluster.nodes.items()})


@pytest.fixture(scope="module")
def warm_up(cluster, people, queue):
    """The first support decisions, through both nodes: training pairs for the first batch."""
    run = ReviewRun(
        balancer_for(cluster), people["reviewers"], agent="support-bot", budget=WARM_UP_DECISIONS
    )
    run.run(list(people["reviewers"]))
    assert run.saved() == WARM_UP_DECISIONS
    assert set(run.balancer.served) == set(cluster.nodes)
    return run


@pytest.fixture(scope="module")
def first_export(cluster, people, warm_up):
    node_a, node_b = cluster.nodes["node-a"].url, cluster.nodes["node-b"].url
    batch_id = export_request(node_a, people["ml"], agent="support-bot", format="jsonl")
    batch = export_wait(node_b, people["ml"], batch_id)
    body, headers = export_download(node_b, people["ml"], batch)
    return Export(batch_id, batch, body, headers, stored_name(cluster, batch_id))


@pytest.fixture(scope="module")
def review_run(cluster, people, warm_up, first_export):
    """Everyone works the rest of the queue; node A is killed after KILL_NODE_AFTER
    decisions. Claims lost with node A (claimed, answer never received) come back when their
    lease expires: the reviewers go on until nothing is claimed or open."""
    balancer = balancer_for(cluster)
    run = ReviewRun(balancer, people["reviewers"])

    def kill_node_a(run: ReviewRun) -> None:
        deadline = time.monotonic() + 120
        while run.saved() < KILL_NODE_AFTER and not run.errors:
            assert time.monotonic() < deadline, "the reviewers made no progress"
            time.sleep(0.01)
        cluster.nodes["node-a"].kill()
        run.killed_at = time.monotonic()

    run.run(list(people["reviewers"]), while_running=kill_node_a)
    rounds = 1
    while open_items(cluster):
        rounds += 1
        assert rounds <= 4, open_items(cluster)
        leases = cluster.primary_query(
            "SELECT max(lease_expires_at) FROM reviews_reviewitem WHERE status = 'claimed'"
        )[0][0]
        if leases is not None:  # lost claims: wait for their lease to end
            time.sleep(max(0.0, (leases - datetime.now(UTC)).total_seconds()) + 0.5)
        run.run(list(people["reviewers"]))
    run.rounds = rounds
    by_node = Counter(d.node for d in run.decisions)
    print(  # shown with -s: what the kill did to the run
        f"review run: {len(run.decisions)} decisions {dict(by_node)}, {rounds} round(s), "
        f"failovers {Counter(f[1].split()[1].rsplit('/', 1)[-1] for f in balancer.failovers)}, "
        f"retried {sum(bool(d.failed_on) for d in run.decisions)} decisions "
        f"({sum(d.maybe_done for d in run.decisions)} possibly done, "
        f"{sum(d.status == 409 for d in run.decisions)} answered 409 on the retry)"
    )
    return run


def open_items(cluster: Cluster) -> dict[str, int]:
    return dict(
        cluster.primary_query(
            "SELECT status, count(*) FROM reviews_reviewitem WHERE status <> 'done' GROUP BY status"
        )
    )


def building_worker(cluster: Cluster, batch_id: int, received_before: dict[str, int]) -> str:
    """The worker that is building `batch_id`: its local build file exists, or its log shows
    a build task it received since the request."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = cluster.primary_query(
            "SELECT status FROM retraining_exportbatch WHERE id = %s", [batch_id]
        )[0][0]
        if status == "building":
            for name, worker in cluster.workers.items():
                if list(worker.export_tmp.glob(f"batch-{batch_id}-*.part")):
                    return name
            for name, worker in cluster.workers.items():
                if builds_received(worker.proc.text()) > received_before[name]:
                    return name
        assert status in ("queued", "building"), status
        time.sleep(0.05)
    raise AssertionError(f"no worker started building batch {batch_id}")


@pytest.fixture(scope="module")
def second_export(cluster, people, review_run):
    node_b = cluster.nodes["node-b"].url
    before = {name: builds_received(w.proc.text()) for name, w in cluster.workers.items()}
    batch_id = export_request(node_b, people["ml"], agent="support-bot", format="csv")
    victim = building_worker(cluster, batch_id, before)
    time.sleep(1)  # a few chunks in, the lease renewed at least once
    cluster.workers[victim].kill()
    survivor = next(name for name in cluster.workers if name != victim)
    batch = export_wait(node_b, people["ml"], batch_id, timeout=120)
    body, headers = export_download(node_b, people["ml"], batch)
    actions = [
        row[0]
        for row in cluster.primary_query(
            "SELECT action FROM reviews_auditevent WHERE target_type = 'export_batch' "
            "AND target_id = %s ORDER BY id",
            [batch_id],
        )
    ]
    extra = {
        "victim": victim,
        "survivor": survivor,
        "actions": actions,
        "survivor_builds": builds_received(cluster.workers[survivor].proc.text())
        - before[survivor],
    }
    print(f"second export: {batch['attempts']} attempts, {extra}")
    return Export(batch_id, batch, body, headers, stored_name(cluster, batch_id), extra)


# --- what must hold -----------------------------------------------------------------------------


def test_it_serves_every_node_through_pgbouncer(cluster):
    for name, health in cluster.started_health.items():
        assert health["database"] == "ok", (name, health)
        assert health["redis"] == "ok", (name, health)
        assert health["celery"] == "broker", (name, health)
    stats = {row["database"]: row for row in cluster.pgbouncer_admin("SHOW STATS")}
    assert stats[DATABASE]["total_xact_count"] > 0  # the nodes' queries went through it
    # The pooler drops the app's `-c jit=off` startup option; the role setting stands in.
    with cluster.pooled_connect() as conn:
        assert conn.execute("SHOW jit").fetchone()[0] == "off"


def check_export(cluster: Cluster, export: Export) -> None:
    digest = hashlib.sha256(export.body).hexdigest()
    assert export.batch["sha256"] == digest
    if "Location" not in export.headers:  # streamed by the app, not a presigned redirect
        assert export.headers["X-Content-SHA256"] == digest
    assert export.batch["size_bytes"] == len(export.body)
    # Every pair the build selected is in the file.
    held = cluster.primary_query(
        "SELECT count(*) FROM retraining_batchpair WHERE batch_id = %s AND NOT duplicate",
        [export.id],
    )[0][0]
    assert export.batch["row_count"] == held > 0
    # In the bucket, with the same bytes, and on no machine's disk.
    assert export.file in cluster.bucket_keys()
    stored = cluster.s3().get_object(Bucket=BUCKET, Key=export.file)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == digest
    assert local_files(cluster) == []


def test_it_builds_an_export_into_the_bucket_and_serves_it_from_the_other_node(
    cluster, first_export
):
    check_export(cluster, first_export)
    rows = [json.loads(line) for line in first_export.body.splitlines()]
    assert first_export.batch["row_count"] == len(rows)
    assert 0 < len(rows) <= WARM_UP_DECISIONS
    assert {row["source"] for row in rows} == {"approve", "correct"}


def test_it_finishes_the_queue_on_node_b_after_node_a_is_killed(cluster, review_run):
    assert not cluster.nodes["node-a"].alive()
    assert "node-a" in review_run.balancer.down  # a request failed there, and went to B
    assert {failed for d in review_run.decisions for failed in d.failed_on} <= {"node-a"}
    assert review_run.killed_at is not None
    before = Counter(d.node for d in review_run.decisions if d.at < review_run.killed_at)
    after = Counter(d.node for d in review_run.decisions if d.at > review_run.killed_at)
    assert set(before) == {"node-a", "node-b"}, before
    assert set(after) == {"node-b"} and after["node-b"] > 100, after
    assert open_items(cluster) == {}
    done = dict(cluster.primary_query("SELECT status, count(*) FROM reviews_reviewitem GROUP BY 1"))
    assert done == {"done": SUPPORT_LOW + LEGAL_LOW}


def test_it_never_claims_an_item_twice_nor_loses_or_doubles_a_decision(
    cluster, warm_up, review_run
):
    runs = (warm_up, review_run)
    claims = [claim for run in runs for claim in run.claims]
    # A claim hands out a new version of the item: no (item, version) went to two people.
    assert len({(item, version) for _, item, version in claims}) == len(claims)
    # The audit trail of every item: a claim ends (decision or release) before the next.
    trail: dict[int, list[str]] = defaultdict(list)
    for item, action in cluster.primary_query(
        "SELECT target_id, action FROM reviews_auditevent WHERE target_type = 'review_item' "
        "ORDER BY id"
    ):
        trail[item].append(action)
    for item, actions in trail.items():
        for first, second in itertools.pairwise(actions):
            assert not (first == second == "item.claimed"), (item, actions)
    # Reviews per item: as many as it requires, by different people.
    for item, required, reviews, reviewers in cluster.primary_query(
        "SELECT i.id, i.required_reviews, count(r.id), count(DISTINCT r.reviewer_id) "
        "FROM reviews_reviewitem i LEFT JOIN reviews_review r ON r.item_id = i.id "
        "GROUP BY i.id, i.required_reviews"
    ):
        assert reviews == reviewers == required, (item, required, reviews, reviewers)
    # Every decision the clients took as saved is there exactly once, and nothing else is.
    stored = cluster.primary_query(
        "SELECT r.item_id, u.username, r.verdict FROM reviews_review r "
        "JOIN auth_user u ON u.id = r.reviewer_id"
    )
    saved = [(d.item, d.reviewer, d.verdict) for run in runs for d in run.decisions if d.saved]
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(saved)
    # Every decision made its training pair (rejections make none).
    pairs = cluster.primary_query("SELECT count(*) FROM retraining_trainingpair")[0][0]
    kept = cluster.primary_query(
        "SELECT count(*) FROM reviews_reviewitem WHERE final_verdict IN ('approve', 'correct')"
    )[0][0]
    assert pairs == kept > 0


def test_it_finishes_a_build_on_the_other_worker_when_its_worker_is_killed(cluster, second_export):
    extra = second_export.extra
    assert not cluster.workers[extra["victim"]].alive()
    assert cluster.workers[extra["survivor"]].alive()
    assert extra["survivor_builds"] >= 1
    assert second_export.batch["attempts"] >= 2
    assert "batch.requeued" in extra["actions"] or "batch.taken_over" in extra["actions"]
    assert extra["actions"][-1] == "batch.ready"
    check_export(cluster, second_export)
    rows = second_export.body.decode().splitlines()
    assert second_export.batch["row_count"] == len(rows) - 1  # a header line
    assert second_export.batch["row_count"] > WARM_UP_DECISIONS


def test_it_reads_from_the_replica(cluster, people, first_export, second_export):
    cluster.wait_replicated(timeout=30)
    node_b = cluster.nodes["node-b"].url
    health = cluster.healthz(cluster.nodes["node-b"])
    assert health is not None and health["replica"]["standby"] is True, health
    before = {
        t: cluster.replica_table_reads(t) for t in ("retraining_exportbatch", "kpis_kpisnapshot")
    }
    # Served by node B from the replica (no pin cookie: this client wrote nothing).
    response = requests.get(
        f"{node_b}/api/v1/exports?agent=support-bot", headers=bearer(people["ml"]), timeout=30
    )
    assert response.status_code == 200
    listed = {b["id"]: b["status"] for b in response.json()["batches"]}
    assert listed == {first_export.id: "ready", second_export.id: "ready"}
    today = datetime.now(UTC).date()
    response = requests.get(
        f"{node_b}/api/v1/kpis",
        params={"agent": "support-bot", "from": str(today - timedelta(days=30)), "to": str(today)},
        headers=bearer(people["ml"]),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    # The replica's own statistics (flushed by its backends within a few seconds) show the
    # tables of both reads scanned there.
    deadline = time.monotonic() + 20
    while any(cluster.replica_table_reads(t) <= n for t, n in before.items()):
        assert time.monotonic() < deadline, "the replica served no read of " + ", ".join(
            t for t, n in before.items() if cluster.replica_table_reads(t) <= n
        )
        time.sleep(0.25)


def test_it_keeps_the_server_connections_within_the_pool(cluster, second_export):
    pool = cluster.pool
    assert pool.samples > 50, pool
    assert pool.errors == [], pool.errors
    assert 0 < pool.pooler_servers <= POOL_SIZE, pool
    assert 0 < pool.primary_backends <= POOL_SIZE + cluster.servers_closed_dirty(), pool
    stats = {row["database"]: row for row in cluster.pgbouncer_admin("SHOW STATS")}
    print(f"pool: {pool}; transactions through PgBouncer: {stats[DATABASE]['total_xact_count']}")
    # Many more transactions than server connections: they were shared.
    assert stats[DATABASE]["total_xact_count"] > 20 * POOL_SIZE
