"""Recall and precision of redaction on a corpus of messages in six languages and six formats
(tests/agents/redaction_corpus.py): at least 200 planted values of each kind and near-misses
that must stay. The figures are printed (`-s`) and are in every assertion message.

Targets: recall 1.0 for the checksummed kinds (IBAN, card) and the agent's own pattern,
at least 0.98 for e-mail and phone. Precision at least 0.98 for every kind: the corpus has
about as many near-misses as planted values, so a floor below that would let one in fifty
findings hide text that is no personal data at all; the checksummed kinds must not make a
single false finding (a near-miss there is a bad checksum or an unknown issuer)."""

from collections import Counter

import orjson
import pytest

from agents.redaction import ConversationMap, Redacted, RedactionPolicy, Redactor
from tests.agents.redaction_corpus import KINDS, N_EACH, POLICY, corpus

RECALL_FLOOR = {"email": 0.98, "phone": 0.98, "iban": 1.0, "card": 1.0, "CASE_ID": 1.0}
PRECISION_FLOOR = {"email": 0.98, "phone": 0.98, "iban": 1.0, "card": 1.0, "CASE_ID": 1.0}


@pytest.fixture(scope="module")
def scores():
    policy = RedactionPolicy.parse(POLICY)
    assert policy is not None
    planted: Counter[str] = Counter()
    found: Counter[str] = Counter()  # planted values covered by a finding of their kind
    findings: Counter[str] = Counter()
    true_findings: Counter[str] = Counter()
    misses: dict[str, list[str]] = {k: [] for k in KINDS}
    false: dict[str, list[str]] = {k: [] for k in KINDS}
    messages = corpus()
    for msg in messages:
        result = policy.find(msg.text)
        for start, end, kind, raw in msg.planted:
            planted[kind] += 1
            if any(f.kind == kind and f.start <= start and f.end >= end for f in result):
                found[kind] += 1
            else:
                misses[kind].append(raw)
        for f in result:
            findings[f.kind] += 1
            if any(k == f.kind and f.start < e and s < f.end for s, e, k, _ in msg.planted):
                true_findings[f.kind] += 1
            else:
                false[f.kind].append(msg.text[f.start : f.end])
    table = {
        kind: {
            "planted": planted[kind],
            "recall": found[kind] / planted[kind],
            "precision": true_findings[kind] / findings[kind] if findings[kind] else 1.0,
            "missed": misses[kind][:5],
            "false": false[kind][:5],
        }
        for kind in KINDS
    }
    languages = Counter(m.language for m in messages)
    forms = Counter(m.form for m in messages)
    print(f"\nredaction corpus: {len(messages)} messages, languages {dict(languages)}")
    print(f"formats {dict(forms)}")
    for kind, row in table.items():
        print(
            f"  {kind:8} planted {row['planted']:4}  recall {row['recall']:.4f}  "
            f"precision {row['precision']:.4f}  missed {row['missed']}  false {row['false']}"
        )
    return table


@pytest.mark.parametrize("kind", KINDS)
def test_it_plants_at_least_200_values_of_each_kind(scores, kind):
    assert scores[kind]["planted"] >= 200 and N_EACH >= 200


@pytest.mark.parametrize("kind", KINDS)
def test_it_finds_the_planted_values(scores, kind):
    row = scores[kind]
    assert row["recall"] >= RECALL_FLOOR[kind], f"{kind}: {row}"


@pytest.mark.parametrize("kind", KINDS)
def test_it_leaves_the_near_misses(scores, kind):
    row = scores[kind]
    assert row["precision"] >= PRECISION_FLOOR[kind], f"{kind}: {row}"


def test_it_keeps_tool_call_arguments_valid_json_when_a_bare_number_is_redacted():
    """A card number sent as a JSON number inside a tool call's arguments (JSON text) becomes
    a string placeholder: the arguments still parse, the other values are untouched."""
    policy = RedactionPolicy.parse({"types": ["email", "card"]})
    assert policy is not None
    arguments = orjson.dumps({"card": 4111111111111111, "email": "ana@example.es", "qty": 12})
    steps = orjson.dumps(
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "name": "pay", "arguments": arguments.decode()}],
            }
        ]
    ).decode()
    out = Redacted()

    redacted = Redactor(policy, b"key").json_text(steps, ConversationMap.load([]), out)

    parsed = orjson.loads(orjson.loads(redacted)[0]["tool_calls"][0]["arguments"])
    assert parsed == {"card": "[CARD_1]", "email": "[EMAIL_1]", "qty": 12}
    assert out.counts == {"card": 1, "email": 1}


@pytest.mark.parametrize(
    "text",
    [
        "Bonjour! mon numéro est +44 7400 123444.  (03/15/2024) merci",
        "6753021569271) mon numéro est +819012345464.  (03/15/2024)",
    ],
)
def test_it_finds_a_phone_number_written_next_to_a_date(text):
    """phonenumbers' matcher drops a whole candidate that runs into a slash date, so each
    candidate is matched in its own window (found by the corpus with other seeds)."""
    policy = RedactionPolicy.parse({"types": ["phone"], "regions": ["GB", "FR"]})
    assert policy is not None

    [finding] = policy.find(text)

    assert finding.kind == "phone"
    assert text[finding.start : finding.end].startswith("+")
