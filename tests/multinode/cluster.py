"""A small Coachdesk deployment on 127.0.0.1 for the multi-node test (issue 14).

What a production set-up on several machines has, each piece a real process on a free port,
nothing shared but the network:

- a private PostgreSQL 15 primary and a streaming replica made from it (`pg_basebackup -R`),
  run as the `postgres` OS user in a temporary folder (the machine's own cluster on 5432 is
  never touched);
- PgBouncer in transaction mode in front of the primary, with a small pool;
- an S3-compatible object store (moto in server mode) with one bucket;
- Redis: the machine's server, on a database number of the test's own (flushed before and
  after) and a queue of the test's own;
- two gunicorn web nodes and two Celery workers, each with its own MEDIA_ROOT and
  EXPORT_TMP_DIR (no shared disk), and a Celery beat of its own (killing a worker never stops
  the periodic sweeps).

`Cluster.close()` stops whatever was started, in reverse order, and deletes the folder,
also after a failed start; it is safe to call twice (the context manager and atexit both
do). MULTINODE_KEEP_LOGS=1 keeps the folder, logs included, for debugging (until the
next run, which deletes what earlier runs left).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.multinode.processes import (
    HARNESS_APP_PREFIX,
    PG_BIN,
    PG_USER,
    Postgres,
    Proc,
    http_get,
    postgres_owned,
    scratch_dir,
    wait_until,
)
from tests.support import free_port

PGBOUNCER = Path("/usr/sbin/pgbouncer")
MOTO_SERVER = Path(sys.executable).with_name("moto_server")
REDIS_DB = 13
POOL_SIZE = 8
DATABASE = "coachdesk_mn"
BUCKET = "coachdesk-batches"
_PREFIX = "coachdesk-multinode-"  # of its folders, and of the machine-wide lock file

# What the app processes must not inherit from the test run: they get their own.
_ENV_DROP_PREFIXES = (
    "DATABASE_", "REDIS_URL", "TEST_REDIS_URL", "STORAGE_URL", "AWS_", "CELERY_", "EXPORT_",
    "MEDIA_ROOT", "REVIEW_", "OUTBOX_", "LEASE_", "REPLICA_",
)  # fmt: skip

# Durability is not under test (fsync off), but commits behave as in production:
# synchronous_commit stays on, so the WAL position moves the way the app expects.
_PRIMARY_SETTINGS = {
    "max_connections": 60,
    "shared_buffers": "64MB",
    "fsync": False,
    "full_page_writes": False,
    "wal_level": "replica",
    "max_wal_senders": 4,
    "wal_keep_size": "256MB",
    "log_min_messages": "warning",
}
_HBA = """\
local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""

_PGBOUNCER_INI = """\
[databases]
{db} = host=127.0.0.1 port={primary_port} dbname={db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/userlist.txt
admin_users = {user}
stats_users = {user}
pool_mode = transaction
default_pool_size = {pool}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = {pool}
max_client_conn = 200
; the app's psycopg sends extra_float_digits; `options` (-c jit=off) is dropped here and set
; on the role instead
ignore_startup_parameters = extra_float_digits,options
server_reset_query =
query_wait_timeout = 60
pidfile = {folder}/pgbouncer.pid
log_connections = 0
; server connections closed under a client that went away are counted (servers_closed_dirty)
log_disconnections = 1
"""

# `migrate`, then the optional preparation (argv: "module:function", where its JSON goes).
_MIGRATE = """
import importlib, json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=1)
if sys.argv[1]:
    module, name = sys.argv[1].split(":")
    with open(sys.argv[2], "w") as out:
        json.dump(getattr(importlib.import_module(module), name)(), out)
"""


def _machine_lock(timeout: float = 900):
    """An exclusive lock on this machine's multi-node cluster (released when the returned
    file is closed, or when the process dies)."""
    import fcntl

    path = Path(tempfile.gettempdir()) / f"{_PREFIX}redis-{REDIS_DB}.lock"
    lock = open(path, "w")  # noqa: SIM115 (held until Cluster.close())
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise TimeoutError(f"another multi-node cluster ran for {timeout:.0f} s") from None
            time.sleep(0.5)


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the cluster (empty when it has everything)."""
    import pwd

    needed = [PG_BIN / "postgres", PG_BIN / "initdb", PG_BIN / "pg_basebackup", PGBOUNCER]
    missing = [str(path) for path in needed if not path.exists()]
    if not MOTO_SERVER.exists():
        missing.append(f"{MOTO_SERVER} (moto[server])")
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        missing.append(f"the {PG_USER!r} OS user")
    if os.geteuid() != 0:
        missing.append("root (to run PostgreSQL and PgBouncer as the postgres user)")
    return missing


@dataclass
class AppProcess:
    """A web node, a worker or beat: its process and its own local folders."""

    name: str
    proc: Proc
    media_root: Path
    export_tmp: Path
    url: str = ""  # web nodes only

    def kill(self) -> None:
        self.proc.kill()

    def alive(self) -> bool:
        return self.proc.alive()


@dataclass
class PoolSamples:
    """Highest values the sampler saw (every 0.1 s) while the cluster ran."""

    samples: int = 0
    primary_backends: int = 0  # app connections on the primary (pg_stat_activity)
    pooler_servers: int = 0  # PgBouncer's server connections to the app database
    pooler_clients_active: int = 0
    pooler_clients_waiting: int = 0
    errors: list[str] = field(default_factory=list)


class Cluster:
    """The whole deployment (see the module docstring): `with Cluster(...) as cluster:`."""

    def __init__(
        self,
        *,
        redis_host: str = "127.0.0.1",
        redis_port: int = 6379,
        settings: dict[str, str] | None = None,
        prepare: str | None = None,
    ) -> None:
        """`settings`: environment of every app process, on top of the contract's.
        `prepare`: "module:function" run right after the migrations, in the same process
        (one boot of the app less); what it returns (JSON) becomes `self.prepared`."""
        # One cluster at a time on this machine (it flushes its Redis database): a second
        # test run, or a second xdist worker, waits here for the first to finish. Holding the
        # lock, it also deletes what a killed run left behind.
        self._redis_lock = _machine_lock()
        for stale in {scratch_dir(), tempfile.gettempdir()}:
            for folder in Path(stale or tempfile.gettempdir()).glob(_PREFIX + "*"):
                if folder.is_dir():
                    shutil.rmtree(folder, ignore_errors=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=scratch_dir()))
        self.tmp.chmod(0o755)  # the postgres user must reach its folders below
        self.queue = f"multinode-{uuid.uuid4().hex[:8]}"
        self.redis_url = f"redis://{redis_host}:{redis_port}/{REDIS_DB}"
        self.settings = settings or {}
        self.prepare = prepare
        self.prepared: Any = None
        self.primary = Postgres("primary", self.tmp / "pg-primary", free_port())
        self.replica = Postgres("replica", self.tmp / "pg-replica", free_port())
        self.pgbouncer_port = free_port()
        self.pgbouncer: Proc | None = None
        self.s3_url = f"http://127.0.0.1:{free_port()}"
        self.moto: Proc | None = None
        self.nodes: dict[str, AppProcess] = {}
        self.workers: dict[str, AppProcess] = {}
        self.beat: AppProcess | None = None
        self.started_health: dict[str, dict] = {}  # each node's first good /healthz
        self.replica_commits_at_start = 0
        self.pool = PoolSamples()
        self._sampler_stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._closed = False
        atexit.register(self.close)

    # --- life cycle ---

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except Exception as exc:
            tails = self.log_tails()  # before close() deletes them
            self.close()
            raise RuntimeError(f"the cluster did not start: {exc}\n\n{tails}") from exc
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Brings everything up. Slow parts overlap: the S3 server boots while PostgreSQL is
        made, the web nodes and workers import the app while `migrate` runs (nobody sends
        them anything before it is done; beat starts after it)."""
        self._flush_redis()
        self._launch_s3()
        self._start_primary()
        self._start_replica()
        self._start_pgbouncer()
        migrate = self._launch_migrate()
        for name in ("node-a", "node-b"):
            self._add_node(name)
        for name in ("worker-1", "worker-2"):
            self._add_worker(name)
        self._finish_migrate(migrate)
        self._finish_s3()
        self._add_beat()
        self._wait_app()
        self.replica_commits_at_start = self.replica_xact_commits()
        self._sampler = threading.Thread(target=self._sample, name="pool-sampler", daemon=True)
        self._sampler.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sampler_stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)
        app = [m.proc for m in (self.beat, *self.workers.values(), *self.nodes.values()) if m]
        for proc in app:  # all asked at once: they shut down in parallel
            proc.send(signal.SIGTERM)
        for proc in app:
            with contextlib.suppress(Exception):
                proc.stop(None)
        for proc, sig in ((self.moto, signal.SIGTERM), (self.pgbouncer, signal.SIGINT)):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop(sig)
        for server in (self.replica, self.primary):
            with contextlib.suppress(Exception):
                server.stop()
        with contextlib.suppress(Exception):
            self._flush_redis()
        if os.environ.get("MULTINODE_KEEP_LOGS") == "1":
            print(f"multinode: logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._redis_lock.close()  # releases it
        atexit.unregister(self.close)

    def processes(self) -> list[Proc]:
        members = [*self.nodes.values(), *self.workers.values(), self.beat]
        procs = [self.primary.proc, self.replica.proc, self.pgbouncer, self.moto]
        return [p for p in (*procs, *(m.proc for m in members if m)) if p is not None]

    def log_tails(self, lines: int = 30) -> str:
        return "\n\n".join(f"--- {p.name} ({p.log}) ---\n{p.tail(lines)}" for p in self.processes())

    # --- the services ---

    def _start_primary(self) -> None:
        self.primary.initdb(**_PRIMARY_SETTINGS)
        (self.primary.data / "pg_hba.conf").write_text(_HBA)
        self.primary.start()
        with self.primary.connect() as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
            # The app asks for jit=off as a startup option, which PgBouncer does not forward
            # (it ignores `options`): the role setting does the same behind the pooler.
            conn.execute(f"ALTER ROLE {PG_USER} SET jit = off")

    def _start_replica(self) -> None:
        # Queries on the replica are never cancelled by the primary's cleanup (a conflict
        # with recovery): the primary keeps the rows they read.
        self.replica.basebackup_of(self.primary, hot_standby=True, hot_standby_feedback=True)
        self.replica.start()
        self.wait_replicated(timeout=30)

    def _start_pgbouncer(self) -> None:
        folder = self.tmp / "pgbouncer"
        folder.mkdir(mode=0o700)
        postgres_owned(folder)
        ini = folder / "pgbouncer.ini"
        ini.write_text(
            _PGBOUNCER_INI.format(
                db=DATABASE, primary_port=self.primary.port, port=self.pgbouncer_port,
                folder=folder, user=PG_USER, pool=POOL_SIZE,
            )
        )  # fmt: skip
        (folder / "userlist.txt").write_text(f'"{PG_USER}" ""\n')
        for path in (ini, folder / "userlist.txt"):
            postgres_owned(path)
        self.pgbouncer = Proc(
            "pgbouncer", [str(PGBOUNCER), str(ini)], log=folder / "pgbouncer.log", cwd=folder,
            postgres_user=True,
        ).start()  # fmt: skip
        wait_until("PgBouncer", self._pgbouncer_answers, self.pgbouncer, timeout=30)

    def _pgbouncer_answers(self) -> bool:
        import psycopg

        try:
            self.pgbouncer_admin("SHOW VERSION")
        except psycopg.Error:
            return False
        return True

    def pgbouncer_connect(self):
        """A connection to PgBouncer's admin console. It speaks only the simple query
        protocol, which psycopg uses for a query without parameters."""
        import psycopg
        from psycopg.rows import dict_row

        dsn = f"host=127.0.0.1 port={self.pgbouncer_port} user={PG_USER} dbname=pgbouncer"
        return psycopg.connect(
            dsn, autocommit=True, row_factory=dict_row, connect_timeout=3, prepare_threshold=None
        )

    def pooled_connect(self):
        """A connection through PgBouncer to the app database, as the app makes them."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.pgbouncer_port} user={PG_USER} dbname={DATABASE}"
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None, connect_timeout=3)

    def pgbouncer_admin(self, command: str) -> list[dict[str, Any]]:
        """SHOW POOLS, SHOW STATS, ... as dicts."""
        with self.pgbouncer_connect() as conn:
            return conn.execute(command).fetchall()

    def _launch_s3(self) -> None:
        folder = self.tmp / "s3"
        folder.mkdir()
        port = self.s3_url.rsplit(":", 1)[1]
        self.moto = Proc(
            "s3", [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", port], log=folder / "moto.log",
            env=self._clean_env(), cwd=folder,
        ).start()  # fmt: skip

    def _finish_s3(self) -> None:
        def answers() -> bool:
            try:
                http_get(f"{self.s3_url}/moto-api/", timeout=1)
            except OSError:
                return False
            return True

        wait_until("moto S3 server", answers, self.moto, timeout=90)
        self.s3().create_bucket(Bucket=BUCKET)

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 (moto's)
        )

    def bucket_keys(self) -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    def _flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(self.redis_url, socket_connect_timeout=2).flushdb()

    # --- the app ---

    def _clean_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(_ENV_DROP_PREFIXES)}

    def app_env(self, media_root: Path, export_tmp: Path) -> dict[str, str]:
        """The environment of a web node or worker: the settings' contract."""
        return {
            **self._clean_env(),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "0",
            "SECRET_KEY": "multinode-under-test-" + "x" * 40,
            "COACHDESK_PLAIN_STATIC": "1",
            "DATABASE_URL": f"postgres://{PG_USER}@127.0.0.1:{self.pgbouncer_port}/{DATABASE}",
            "DATABASE_POOLER": "transaction",
            "DATABASE_REPLICA_URL": self.replica.url(DATABASE),
            "STORAGE_URL": f"s3://{BUCKET}?endpoint_url={self.s3_url}&region_name=us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "REDIS_URL": self.redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_TASK_DEFAULT_QUEUE": self.queue,
            "MEDIA_ROOT": str(media_root),
            "EXPORT_TMP_DIR": str(export_tmp),
            **self.settings,
        }

    def _launch_migrate(self) -> Proc:
        """`migrate` (and the preparation) straight to the primary, not through the pooler."""
        folder = self.tmp / "migrate"
        env = self.app_env(folder / "media", folder / "export-tmp")
        env.pop("DATABASE_POOLER")
        env["DATABASE_URL"] = (
            self.primary.url(DATABASE) + f"?application_name={HARNESS_APP_PREFIX}migrate"
        )
        folder.mkdir()
        argv = [sys.executable, "-c", _MIGRATE, self.prepare or "", str(folder / "prepared.json")]
        return Proc("migrate", argv, log=folder / "migrate.log", env=env).start()

    def _finish_migrate(self, migrate: Proc) -> None:
        assert migrate.process is not None
        try:
            code = migrate.process.wait(timeout=300)
        finally:
            migrate.stop()
        if code:
            raise RuntimeError(f"migrate failed ({code}):\n{migrate.tail(60)}")
        if self.prepare:
            self.prepared = json.loads((self.tmp / "migrate" / "prepared.json").read_text())

    def _app_process(self, name: str, argv: list[str], url: str = "") -> AppProcess:
        folder = self.tmp / name
        media, export_tmp = folder / "media", folder / "export-tmp"
        export_tmp.mkdir(parents=True)
        media.mkdir()
        env = self.app_env(media, export_tmp)
        proc = Proc(name, argv, log=folder / f"{name}.log", env=env).start()
        return AppProcess(name, proc, media, export_tmp, url)

    def _add_node(self, name: str) -> None:
        port = free_port()
        self.nodes[name] = self._app_process(
            name,
            [
                sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                "--workers", "2", "--threads", "4", "--timeout", "60", "--graceful-timeout", "5",
                # The app is imported once, the workers forked from it: a quicker boot.
                "--preload",
                # Not the control socket in ~/.gunicorn that every gunicorn shares.
                "--no-control-socket",
                "--access-logfile", "-", "--name", f"coachdesk-{name}",
            ],
            url=f"http://127.0.0.1:{port}",
        )  # fmt: skip

    def _add_worker(self, name: str) -> None:
        self.workers[name] = self._app_process(
            name,
            [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", self.queue,
                "-n", f"{name}-{self.queue}@%h",
                # One task at a time, in the worker process itself: what it is building dies
                # with it.
                "--pool", "solo", "--concurrency", "1",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "INFO",
            ],
        )  # fmt: skip

    def _add_beat(self) -> None:
        folder = self.tmp / "beat"
        self.beat = self._app_process(
            "beat",
            [
                sys.executable, "-m", "celery", "-A", "config", "beat",
                "--schedule", str(folder / "schedule"), "--pidfile", str(folder / "beat.pid"),
                "--loglevel", "INFO",
            ],
        )  # fmt: skip

    def _wait_app(self) -> None:
        """A node is ready when it answers /healthz (its database check goes through
        PgBouncer), a worker or beat when its log says so."""
        for node in self.nodes.values():

            def answers(node: AppProcess = node) -> bool:
                health = self.healthz(node)
                if health is not None:
                    self.started_health[node.name] = health
                return health is not None

            wait_until(f"{node.name} /healthz", answers, node.proc, 90)
        for worker in self.workers.values():
            ready = lambda w=worker: " ready." in w.proc.text()  # noqa: E731
            wait_until(worker.name, ready, worker.proc, 90)
        beat = self.beat
        assert beat is not None
        wait_until("beat", lambda: "beat: Starting" in beat.proc.text(), beat.proc, 90)

    def healthz(self, node: AppProcess) -> dict | None:
        try:
            status, body = http_get(f"{node.url}/healthz", timeout=3)
        except OSError:
            return None
        return json.loads(body) if status == 200 else None

    # --- the databases ---

    def wait_replicated(self, timeout: float = 30) -> None:
        """Waits until the replica has replayed everything the primary has written so far."""
        with self.primary.connect() as conn:
            target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.replica.connect() as conn:
            while True:
                done, at = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()",
                    [target],
                ).fetchone()
                if done:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the replica is at {at}, the primary at {target}")
                time.sleep(0.05)

    def primary_query(self, sql: str, params: Any = None) -> list[tuple]:
        with self.primary.connect(DATABASE) as conn:
            return conn.execute(sql, params).fetchall()

    def replica_xact_commits(self) -> int:
        """Transactions the replica has committed in the app database (its own statistics,
        read from the `postgres` database, so the harness does not count itself)."""
        with self.replica.connect() as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [DATABASE]
            ).fetchone()
        return int(row[0]) if row else 0

    def replica_table_reads(self, table: str) -> int:
        """Scans of an app table the replica has served (its own activity statistics: the
        health check's query there reads no table)."""
        with self.replica.connect(DATABASE) as conn:
            row = conn.execute(
                "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                "WHERE relname = %s",
                [table],
            ).fetchone()
        return int(row[0]) if row else 0

    def servers_closed_dirty(self) -> int:
        """Server connections PgBouncer closed because their client went away in the middle
        of a transaction (a killed node or worker). PgBouncer frees the slot at once, while
        PostgreSQL may still be finishing that backend's statement: for a moment the primary
        can show one backend more than the pool per such close."""
        assert self.pgbouncer is not None
        return self.pgbouncer.text().count("closing because: client disconnect while server")

    def _sample(self) -> None:
        """Every 0.1 s: the app's backends on the primary, PgBouncer's pools (the maxima
        are kept in `self.pool`)."""
        import psycopg

        pool = self.pool
        try:
            primary, pooler = self.primary.connect(), self.pgbouncer_connect()
        except psycopg.Error as exc:
            pool.errors.append(repr(exc))
            return
        with primary, pooler:
            while not self._sampler_stop.wait(0.1):
                try:
                    backends = primary.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND backend_type = 'client backend' AND application_name NOT LIKE %s",
                        [DATABASE, HARNESS_APP_PREFIX + "%"],
                    ).fetchone()[0]
                    pools = pooler.execute("SHOW POOLS").fetchall()
                except psycopg.Error as exc:
                    pool.errors.append(repr(exc))
                    return
                ours = [row for row in pools if row["database"] == DATABASE]
                states = ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")
                servers = sum(row[state] for row in ours for state in states)
                pool.samples += 1
                pool.primary_backends = max(pool.primary_backends, backends)
                pool.pooler_servers = max(pool.pooler_servers, servers)
                active = sum(row["cl_active"] for row in ours)
                waiting = sum(row["cl_waiting"] for row in ours)
                pool.pooler_clients_active = max(pool.pooler_clients_active, active)
                pool.pooler_clients_waiting = max(pool.pooler_clients_waiting, waiting)
