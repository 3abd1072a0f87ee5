"""The database side of redaction outside ingest (ingest has its own, batch-wise:
ingest/redact.py): redacting a reviewer's correction with its conversation's mapping, and
reading a conversation's mapping for the admins' reveal.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from agents.models import Interaction, RedactedValue
from agents.redaction import (
    ConversationMap,
    Redacted,
    RedactionPolicy,
    Redactor,
    conversation_key,
    placeholder,
)


def interaction_conversation(interaction: Interaction) -> str:
    return conversation_key(interaction.conversation_id, interaction.external_id)


def correction_redact(
    *, interaction: Interaction, texts: list[str], policy_value: dict | None = None
) -> list[str]:
    """`texts` (a correction, notes) with any personal data in them redacted against the
    interaction's conversation: a value already known keeps its placeholder, a new one gets
    the next number and its mapping row (with the original when the policy keeps them).
    Placeholders typed as such are left as typed. Unchanged when the agent has no policy.

    Call it in the transaction that stores the texts: the new mapping rows are written in it
    (ON CONFLICT DO NOTHING on the digest, like ingest). Reads the agent (cached on the
    interaction when loaded with it; `policy_value`, the agent's `redaction` when the caller
    read it already) and, when a text has personal data, the mapping."""
    if policy_value is None:
        policy_value = interaction.agent.redaction
    policy = RedactionPolicy.parse(policy_value)
    if policy is None or not any(texts):
        return texts
    redactor = Redactor(policy, settings.SECRET_KEY.encode())
    if not any(policy.find(t) for t in texts if t):
        return texts
    key = interaction_conversation(interaction)
    rows = RedactedValue.objects.filter(
        agent_id=interaction.agent_id, conversation_key=key
    ).values_list("kind", "number", "digest")
    mapping = ConversationMap.load(rows)
    out = Redacted()
    redacted = [redactor.text(t, mapping, out) for t in texts]
    RedactedValue.objects.bulk_create(
        [
            RedactedValue(
                agent_id=interaction.agent_id,
                conversation_key=key,
                kind=v.kind,
                number=v.number,
                digest=v.digest,
                original=v.original,
            )
            for v in out.fresh.values()
        ],
        ignore_conflicts=True,
    )
    return redacted


@dataclass(frozen=True)
class RevealedValue:
    placeholder: str
    original: str | None  # None: the policy did not keep it


def conversation_mapping(interaction: Interaction) -> list[RevealedValue]:
    """Every placeholder of the interaction's conversation with its original (when kept),
    by kind and number. For the admins' reveal only: the caller checks the role and writes
    the audit event."""
    rows = RedactedValue.objects.filter(
        agent_id=interaction.agent_id, conversation_key=interaction_conversation(interaction)
    ).order_by("kind", "number", "id")
    return [RevealedValue(placeholder(r.kind, r.number), r.original) for r in rows]
