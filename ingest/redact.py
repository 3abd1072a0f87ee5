"""Redaction on the ingest path (the policy and the placeholders: agents/redaction.py).

Every entry point (the API, the CLI import and its pipelined child, OTLP traces) prepares
its batches in `ingest.batches.prepare_stream`, which hands each record of an agent with a
policy to `ImportRedaction.apply` before the record becomes a row: its texts are redacted
there, in the process that prepares (the forked child of a pipelined import), so no
original ever reaches a row, a COPY line or a queue between processes.

A conversation's mapping (agents.RedactedValue) is loaded once per conversation per import
and numbered on in memory. The new mapping rows travel with the batch that first uses them
(`PreparedBatch.redacted_data`) and are written in that batch's transaction by
`redacted_write_pg`, only for interactions the batch really stored (a duplicate skipped by
the merge leaves no mapping behind; a rolled-back batch leaves none at all), with ON
CONFLICT DO NOTHING on the digest: a mapping row already stored by an earlier batch of the
same import (every later interaction of the conversation carries the import's new values
again, in case that earlier batch was a duplicate) is not written twice.

Concurrency limit, stated plainly: two imports running at the same time that both bring a
value new to the same conversation each number it from what was stored when they loaded
the conversation. They may then give two different values the same number (both mapping
rows are stored: the reveal shows both originals under that placeholder), or one value two
numbers (the second mapping row is dropped by ON CONFLICT: its placeholder has no stored
original). A conversation is normally fed by one agent pipeline, in order, so this is
accepted rather than serialising imports per conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice

import orjson
from django.conf import settings
from django.db import connection

from agents.models import Agent, RedactedValue
from agents.redaction import (
    ConversationMap,
    MappedValue,
    RedactionPolicy,
    Redactor,
    conversation_key,
)
from ingest.writers import copy_escape

NO_REDACTIONS = "{}"
# Records read ahead to load their conversations' maps in one query (`prefetched`).
PREFETCH = 500

Key = tuple[int, str]


def hmac_key() -> bytes:
    return settings.SECRET_KEY.encode()


class ImportRedaction:
    """The redaction state of one import: one redactor per agent with a policy, the
    conversations' maps, and the new mapping rows of the batch being prepared."""

    def __init__(self) -> None:
        self._maps: dict[tuple[int, str], ConversationMap] = {}
        # Per prepared row (by key): its conversation and the import's new values it uses.
        self._pending: dict[Key, tuple[str, list[MappedValue]]] = {}

    @staticmethod
    def redactor_of(agent: Agent) -> Redactor | None:
        """The agent's redactor; None without a policy (then ingest does nothing more)."""
        policy = RedactionPolicy.parse(agent.redaction)
        return None if policy is None else Redactor(policy, hmac_key())

    def prefetched(
        self, records: Iterator[dict], redacting: Callable[[str], int | None]
    ) -> Iterator[dict]:
        """`records` unchanged, in order, read PREFETCH at a time: the maps of the
        conversations among them that are new to this import, for the agents `redacting`
        names (slug → agent id, None without a policy), are loaded in one query per chunk
        instead of one per conversation."""
        while chunk := list(islice(records, PREFETCH)):
            wanted: dict[int, set[str]] = {}
            for rec in chunk:
                agent_id = redacting(rec["agent"])
                if agent_id is None:
                    continue
                conversation = conversation_key(rec["conversation_id"], rec["external_id"])
                if (agent_id, conversation) not in self._maps:
                    wanted.setdefault(agent_id, set()).add(conversation)
            if wanted:
                self._load(wanted)
            yield from chunk

    def _load(self, wanted: dict[int, set[str]]) -> None:
        rows: dict[tuple[int, str], list[tuple[str, int, str]]] = {}
        for agent_id, conversations in wanted.items():
            for rest in RedactedValue.objects.filter(
                agent_id=agent_id, conversation_key__in=conversations
            ).values_list("conversation_key", "kind", "number", "digest"):
                rows.setdefault((agent_id, rest[0]), []).append(rest[1:])
            for conversation in conversations:
                key = (agent_id, conversation)
                self._maps[key] = ConversationMap.load(rows.get(key, ()))

    def apply(self, rec: dict, agent_id: int, redactor: Redactor) -> str:
        """Redacts the validated record in place; returns its counts as JSON text (the
        `redactions` column)."""
        conversation = conversation_key(rec["conversation_id"], rec["external_id"])
        mapping = self._maps.get((agent_id, conversation))
        if mapping is None:
            rows = RedactedValue.objects.filter(
                agent_id=agent_id, conversation_key=conversation
            ).values_list("kind", "number", "digest")
            mapping = self._maps[(agent_id, conversation)] = ConversationMap.load(rows)
        done = redactor.record(rec, mapping)
        if done.fresh:
            self._pending[(agent_id, rec["external_id"])] = (
                conversation,
                list(done.fresh.values()),
            )
        return orjson.dumps(done.counts).decode() if done.counts else NO_REDACTIONS

    def take_copy_text(self, keys: Sequence[Key], ids: Sequence[int]) -> bytes:
        """The COPY text of the new mapping rows of the rows `keys` (ids[i] the interaction
        id of keys[i]), for `redacted_write_pg`; forgets them."""
        if not self._pending:
            return b""
        lines: list[str] = []
        for key, pk in zip(keys, ids, strict=True):
            pending = self._pending.get(key)
            if pending is None:
                continue
            conversation, values = pending
            for v in values:
                original = "\\N" if v.original is None else copy_escape(v.original)
                lines.append(
                    f"{pk}\t{key[0]}\t{copy_escape(conversation)}\t{v.kind}\t{v.number}\t"
                    f"{v.digest}\t{original}\n"
                )
        self._pending.clear()
        return "".join(lines).encode()

    def take_objects(self) -> list[RedactedValue]:
        """The portable path's new mapping rows (SQLite; written with ignore_conflicts)."""
        objects = [
            RedactedValue(
                agent_id=agent_id,
                conversation_key=conversation,
                kind=v.kind,
                number=v.number,
                digest=v.digest,
                original=v.original,
            )
            for (agent_id, _), (conversation, values) in self._pending.items()
            for v in values
        ]
        self._pending.clear()
        return objects


_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS coachdesk_stage_redacted (interaction_id bigint,"
    " agent_id bigint, conversation_key text, kind text, number integer, digest text,"
    " original text) ON COMMIT DELETE ROWS"
)
_STAGE_COLUMNS = "interaction_id, agent_id, conversation_key, kind, number, digest, original"
# Only for interactions that are stored now (a merged batch skips duplicates: their ids,
# reserved for this batch, are in no row); one row per value, in key order, so concurrent
# writers lock the unique index's entries in the same order.
_INSERT = """
INSERT INTO agents_redactedvalue
    (agent_id, conversation_key, kind, number, digest, original, created_at)
SELECT DISTINCT ON (s.agent_id, s.conversation_key, s.digest)
    s.agent_id, s.conversation_key, s.kind, s.number, s.digest, s.original, now()
FROM coachdesk_stage_redacted s
WHERE EXISTS (SELECT 1 FROM reviews_interaction i WHERE i.id = s.interaction_id)
ORDER BY s.agent_id, s.conversation_key, s.digest
ON CONFLICT (agent_id, conversation_key, digest) DO NOTHING
"""


def redacted_write_pg(data: bytes) -> None:
    """Writes a batch's new mapping rows (`ImportRedaction.take_copy_text`) in the caller's
    transaction, after the batch's interactions."""
    if not data:
        return
    with connection.cursor() as cursor:
        cursor.execute(_STAGE)
        # Explicit, because inside an outer transaction (tests) ON COMMIT has not fired yet.
        cursor.execute("TRUNCATE coachdesk_stage_redacted")
        with (
            connection.wrap_database_errors,
            cursor.cursor.copy(
                f"COPY coachdesk_stage_redacted ({_STAGE_COLUMNS}) FROM STDIN"
            ) as copy,
        ):
            copy.write(data)
        cursor.execute(_INSERT)
