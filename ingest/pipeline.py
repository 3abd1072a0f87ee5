"""The moving parts of the pipelined file import (`ingest.services.interactions_ingest_file`).

Reading, parsing, validating and routing the records and formatting their COPY text is
Python's work; storing them (parsing the COPY text, the heap and the indexes, the foreign
key checks, the review items) is PostgreSQL's, and takes longer. So a forked child does the
first (`produce`), and this process hands the batches it receives to WRITERS threads, each
committing on its own connection: the database works on two transactions at once while
the child prepares the next batches. The queues between them hold a few batches at most,
so memory stays flat in the size of the input.

Two writers of one import never wait on each other in a cycle: like two concurrent imports,
each writes its batch in key order (ingest.writers). A batch is started only once every
batch two or more before it has ended, so only neighbours are ever written at once, and
the child drops from each batch the keys of the one before (ingest.batches.prepare_stream):
the first occurrence of a key in the input is the one stored, as in the sequential import.
Neighbours may commit out of input order; the errors of each are reported in input order by
the receiving thread (`BatchWriter.take_errors`) before it hands the batch over.
"""

from __future__ import annotations

import os
import queue
import threading
import traceback
from typing import BinaryIO

from django.db import connection, connections

from ingest.batches import AgentPolicies, BatchWriter, PreparedBatch, prepare_stream
from ingest.readers import ProgressTracker, iter_records

WRITERS = 2


class IngestAborted(Exception):
    """The preparing process failed; batches committed before it stay committed."""


def produce(
    stream: BinaryIO, source_fd: int | None, channel, actor_id: int | None, size: int
) -> None:
    """The forked child: prepared batches into `channel`, then None (or a traceback string
    when something failed)."""
    tracker = ProgressTracker()
    for conn in connections.all(initialized_only=True):
        conn.connection = None  # never speak on a handle inherited from the parent
    if source_fd is not None:
        # Buffered exactly like the parent's stream, from the position it had reached.
        stream = os.fdopen(os.dup(source_fd), "rb", buffering=1024 * 1024)
    try:
        agents = AgentPolicies(actor_id)
        for prepared in prepare_stream(iter_records(stream, tracker), agents, size, copy_text=True):
            prepared.bytes_read = tracker.bytes_read
            channel.put(prepared)
        channel.put(None)
    except BaseException:
        channel.put(traceback.format_exc())
    finally:
        connections.close_all()
        channel.close()
        channel.join_thread()


class WriterThreads:
    """`writer.write` on `count` threads, each with its own database connection (closed when
    the thread ends). `submit` blocks while every thread is busy and one batch waits. The
    first failure of a thread is raised by the next `submit`, or by `raise_failure` after
    `join`: the batches handed over before it are still written, so every batch before the
    failed one is stored (and perhaps one or two after it)."""

    def __init__(self, writer: BatchWriter, count: int = WRITERS) -> None:
        self._writer = writer
        self._jobs: queue.Queue[tuple[int, PreparedBatch] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._submitted = 0
        self._ended: set[int] = set()
        self._all_ended_below = 0  # every batch numbered below it has ended
        self._turns = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"ingest-writer-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                number, prepared = job
                self._wait_for_turn(number)
                try:
                    self._writer.write(prepared)
                except BaseException as exc:
                    self._failure = self._failure or exc
                finally:
                    self._end(number)
        finally:
            connection.close()

    def _wait_for_turn(self, number: int) -> None:
        """Until every batch numbered below `number - 1` has ended."""
        with self._turns:
            self._turns.wait_for(lambda: self._all_ended_below >= number - 1)

    def _end(self, number: int) -> None:
        with self._turns:
            self._ended.add(number)
            while self._all_ended_below in self._ended:
                self._ended.remove(self._all_ended_below)
                self._all_ended_below += 1
            self._turns.notify_all()

    def submit(self, prepared: PreparedBatch) -> None:
        self.raise_failure()
        self._jobs.put((self._submitted, prepared))
        self._submitted += 1

    def join(self) -> None:
        """Waits until the batches handed over so far are written (or dropped after a
        failure) and the threads have ended."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
