"""The ML engineer's workflow in real Chromium (issue 6): see the pairs available, build a
batch, watch its progress bar fill, download it and check it against its checksum.

Pairs are made the real way: a reviewer claims items and decides them through
reviews.services. The build runs in a background thread started when the request commits,
standing in for a Celery worker, and is slowed down (one row per chunk, a pause after each)
so the page really has something to show while it polls.
"""

import hashlib
import threading
from pathlib import Path

import pytest
from django.db import connections, transaction
from playwright.sync_api import Page, expect

from retraining import services, tasks
from retraining.models import ExportBatch
from reviews import services as review_services
from tests.factories import AgentFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.usefixtures("transactional_db")

# (input, the agent's output, error category, the reviewer's correction or "" to approve)
DECISIONS = [
    ("Where is my parcel?", "It left our warehouse today.", None, ""),
    ("¿Puedo devolver unas botas usadas?", "Sí, en 30 días.", "tone",
     "Sí, dentro de 30 días, con el ticket."),
    ("ما هي سياسة الإرجاع؟", "٣٠ يومًا.", None, ""),
    ("Can I pay by invoice?\nFor a company.", "No.", "incomplete",
     "Yes: companies can pay by invoice within 14 days."),
    ("Do you ship to Norway?", "Yes, in 3–5 days.", None, ""),
    ("Was kostet der Versand?", "Nichts.", "factual-error",
     "Ab 50 € ist der Versand kostenlos, sonst 4,90 €."),
    ("Is the blue kettle back?", "Yes, since Monday.", None, ""),
    ("Can I change my order?", "Within one hour of ordering.", None, ""),
]  # fmt: skip


def decide_all(agent, reviewer) -> None:
    for n, (text_in, text_out, category, corrected) in enumerate(DECISIONS):
        ReviewItemFactory(
            interaction__agent=agent,
            interaction__input=text_in,
            interaction__output=text_out,
            interaction__agent_version="2026.11.2" if n % 3 else "2026.11.1",
            interaction__domain="support",
        )
        item = review_services.item_claim(reviewer=reviewer)
        decision = review_services.decision_validate(
            item=item,
            verdict="correct" if corrected else "approve",
            corrected_output=corrected,
            error_category=category,
        )
        review_services.review_submit(item=item, reviewer=reviewer, decision=decision)


@pytest.fixture
def worker_thread(monkeypatch, settings):
    """Builds run in a thread once their request commits, slowly enough to watch."""
    settings.EXPORT_CHUNK_SIZE = 1
    settings.EXPORT_TEST_CHUNK_DELAY_SECONDS = 0.35
    threads = []

    def build_in_background(batch_id: int) -> None:
        try:
            tasks.build_batch(batch_id)
        finally:
            connections.close_all()

    def enqueue(batch):
        def start():
            thread = threading.Thread(target=build_in_background, args=(batch.pk,), daemon=True)
            threads.append(thread)
            thread.start()

        transaction.on_commit(start)

    monkeypatch.setattr(services, "_enqueue", enqueue)
    yield
    for thread in threads:
        thread.join(timeout=30)


def test_it_builds_watches_and_downloads_a_batch(
    page: Page, live_server, login, screenshot, worker_thread, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    agent = AgentFactory(slug="support-bot", name="Support bot", domain="support")
    AgentFactory(slug="shop-recommender", name="Shop recommender", kind="recommender")
    reviewer = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    ml = UserFactory(username="mona", roles=["ml"])
    decide_all(agent, reviewer)
    earlier = services.batch_request(agent=agent, format="csv", actor=ml, enqueue=False)
    services.batch_build(batch_id=earlier.pk)
    services.batch_mark_trained(
        batch=ExportBatch.objects.get(pk=earlier.pk), agent_version="2026.11.2", actor=ml
    )

    login("mona", next_url="/exports/")
    expect(page).to_have_url(f"{live_server.url}/exports/")
    expect(page.get_by_role("heading", name="Retraining exports")).to_be_visible()
    pairs = page.locator("section[aria-labelledby=pairs-title]")
    expect(pairs.get_by_role("row", name="Support bot")).to_contain_text("5")  # approved

    form = page.locator("#build_form")
    form.get_by_label("Format", exact=True).select_option("jsonl")
    form.get_by_label("Only new pairs").uncheck()
    form.get_by_role("button", name="Build batch").click()

    expect(page.locator("table.batches tbody tr")).to_have_count(2)  # the htmx answer is in
    batch = ExportBatch.objects.exclude(pk=earlier.pk).get()
    row = page.locator(f"#batch-{batch.pk}")
    # The row polls while the batch builds: its progress bar fills up.
    expect(row.locator("progress")).to_be_visible()
    expect(row).to_contain_text("Building", timeout=15_000)
    expect(row.locator("progress")).not_to_have_attribute("value", "0", timeout=15_000)
    expect(row).to_contain_text("Ready", timeout=30_000)
    expect(row.locator("progress")).to_have_count(0)
    batch.refresh_from_db()
    expect(row).to_contain_text(batch.sha256[:12])
    expect(row).to_contain_text("8")
    screenshot("exports", full_page=True)

    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download").click()
    download = download_info.value
    data = Path(download.path()).read_bytes()
    assert download.suggested_filename == f"support-bot-jsonl-batch-{batch.pk}.jsonl"
    assert hashlib.sha256(data).hexdigest() == batch.sha256
    assert data.decode().count("\n") == len(DECISIONS)
    assert "¿Puedo devolver unas botas usadas?" in data.decode()


def test_the_agent_picker_switches_the_agent_under_the_strict_policy(
    page: Page, live_server, login
):
    """Choosing an agent in the picker reloads the page for it (issue 17: an inline
    onchange handler was blocked by the page's own CSP, and the picker did nothing)."""
    support = AgentFactory(slug="support-bot", name="Support bot", domain="support")
    AgentFactory(slug="shop-recommender", name="Shop recommender", kind="recommender")
    decide_all(support, UserFactory(username="rita", roles=["reviewer"], domains=["support"]))
    UserFactory(username="mona", roles=["ml"])
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if msg.type == "error" else None)

    login("mona", next_url="/exports/?agent=support-bot")
    expect(page.get_by_role("heading", name="Support bot: pairs by error category")).to_be_visible()
    page.get_by_label("Agent", exact=True).first.select_option("shop-recommender")
    page.wait_for_url("**/exports/?agent=shop-recommender")
    expect(page.get_by_text("No pairs for Shop recommender yet")).to_be_visible()
    expect(page.locator("#agent-picker")).to_have_value("shop-recommender")
    assert violations == []
