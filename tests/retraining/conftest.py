"""Fixtures of the retraining tests: private media / temp folders, and training pairs made
the real way (a reviewer claims an item and decides it through reviews.services)."""

import os
import tempfile

import pytest
import tqdm

# Hugging Face `datasets` reads these when it is imported: never reach the network, keep its
# caches out of the home folder.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="coachdesk-hf-"))
# No progress bars, and no tqdm monitor thread (tqdm starts one even for a disabled bar): it
# would outlive the test, and later tests that fork (reviews' pipelined ingest) must not run
# in a multi-threaded process.
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
tqdm.tqdm.monitor_interval = 0

# Texts that break naive exporters: non-ASCII, right-to-left, newlines of every kind,
# quotes and separators, spreadsheet formula starts, strings pandas reads as NaN.
TRICKY = [
    ("Où est ma commande ? Ünïcödé — 日本語 🚀", "Elle arrive demain, promis. ✅"),
    ("مرحبا، كيف يمكنني إرجاع المنتج؟", "يمكنك إرجاعه خلال ٣٠ يومًا."),
    ("שלום, מה שעות הפתיחה?", "אנחנו פתוחים 9:00–17:00."),
    ("line one\nline two\r\nline three\rend", "a\u2028b\u2029c\u0085d\ttab"),
    ('He said "hi", then; left, right', '=HYPERLINK("http://x","click")'),
    ("-5 degrees outside?", "+1 for the umbrella @team"),
    ("NA", "null"),
    ("   leading and trailing spaces   ", "\ttab first"),
]


@pytest.fixture(autouse=True)
def media(settings, tmp_path, monkeypatch):
    """Batches are written under this test's own folder (and so are a worker's, through the
    environment it inherits)."""
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    settings.EXPORT_TMP_DIR = root / ".export-tmp"
    monkeypatch.setenv("MEDIA_ROOT", str(root))
    monkeypatch.setenv("EXPORT_TMP_DIR", str(root / ".export-tmp"))
    return root


@pytest.fixture
def agent(db):
    from tests.factories import AgentFactory

    return AgentFactory(slug="support-bot", domain="support")


@pytest.fixture
def decide(reviewer, other_reviewer):
    """decide(agent, input, output, verdict="approve", corrected="", category=None,
    version="v1", context=None, four_eyes=False, steps=None) → the TrainingPair the decision
    made."""
    from reviews import services as review_services
    from tests.factories import ReviewItemFactory

    def decide(
        agent,
        input,
        output,
        verdict="approve",
        corrected="",
        category=None,
        version="v1",
        context=None,
        four_eyes=False,
        steps=None,
    ):
        item = ReviewItemFactory(
            interaction__agent=agent,
            interaction__input=input,
            interaction__output=output,
            interaction__agent_version=version,
            interaction__context=context or [],
            interaction__steps=steps or [],
            required_reviews=2 if four_eyes else 1,
        )
        outcome = None
        for person in [reviewer, other_reviewer] if four_eyes else [reviewer]:
            claimed = review_services.item_claim(reviewer=person)
            assert claimed is not None and claimed.pk == item.pk
            decision = review_services.decision_validate(
                item=claimed, verdict=verdict, corrected_output=corrected, error_category=category
            )
            outcome = review_services.review_submit(
                item=claimed, reviewer=person, decision=decision
            )
        assert outcome.pair is not None, outcome.status
        return outcome.pair

    return decide


@pytest.fixture
def tricky_pairs(agent, decide):
    """One pair per tricky text, alternating approvals and corrections."""
    pairs = []
    for n, (text_in, text_out) in enumerate(TRICKY):
        if n % 2:
            pairs.append(
                decide(
                    agent,
                    text_in,
                    f"original {n}",
                    verdict="correct",
                    corrected=text_out,
                    category="factual-error",
                    version="v2",
                )
            )
        else:
            pairs.append(decide(agent, text_in, text_out))
    return pairs


@pytest.fixture
def build(ml):
    """build(agent, format, **request) → the batch, built in-process; fails the test unless
    it is ready."""
    from retraining import services
    from retraining.models import ExportBatch

    def build(agent, format="jsonl", *, actor=ml, expect="ready", **request):
        batch = services.batch_request(
            agent=agent, format=format, actor=actor, enqueue=False, **request
        )
        services.batch_build(batch_id=batch.pk)
        batch = ExportBatch.objects.select_related("agent").get(pk=batch.pk)
        assert batch.status == expect, batch.failure_reason
        return batch

    return build


@pytest.fixture
def fresh_broker_pool():
    """tests/conftest.py's `celery_worker` closes the app's broker connection pool when it
    ends, and kombu keeps that closed pool registered for the broker URL, so a second worker
    test in the same run would fail with "Acquire on closed pool". Start from new pools."""
    from kombu import pools

    from config.celery import app

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def worker(fresh_broker_pool, celery_worker):
    """A real Celery worker on Redis (tests/conftest.py), usable by several tests in a run."""
    return celery_worker
