"""The exports page: roles, empty states, the build form (plain and htmx), live rows,
retry, the training mark and downloads."""

import hashlib

import pytest

from retraining import formats, services
from retraining.models import ExportBatch
from tests.factories import FeedbackEventFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def ml_client(client, ml):
    client.force_login(ml)
    return client


def test_it_sends_anonymous_users_to_the_login_page(client):
    response = client.get("/exports/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/exports/")


def test_it_refuses_reviewers(client, reviewer):
    client.force_login(reviewer)

    for response in (client.get("/exports/"), client.post("/exports/build/", {"agent": "x"})):
        assert response.status_code == 403
        assert b"<h1>Not allowed</h1>" in response.content
    assert not ExportBatch.objects.exists()


def test_it_lets_admins_in(client, lead):
    client.force_login(lead)

    response = client.get("/exports/")

    assert response.status_code == 200
    assert "No batches yet" in response.content.decode()


def test_it_shows_empty_states(ml_client):
    html = ml_client.get("/exports/").content.decode()

    assert "No agents yet" in html
    assert "No batches yet" in html


def test_it_shows_the_pairs_available_per_agent(ml_client, agent, decide):
    decide(agent, "a", "A")
    decide(agent, "b", "B", verdict="correct", corrected="B!", category="tone", version="v9")

    response = ml_client.get("/exports/?agent=support-bot")

    html = response.content.decode()
    assert response.context["overview"][0]["new"] == 2
    assert "Tone" in html and "v9" in html
    assert "No batches yet" in html


def test_it_refuses_to_build_on_get(ml_client):
    response = ml_client.get("/exports/build/")

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert not ExportBatch.objects.exists()


def build_form(**extra):
    return {
        "dataset": "pairs",
        "agent": "support-bot",
        "format": "jsonl",
        "min_reviews": 1,
        **extra,
    }


def test_it_queues_a_batch_and_redirects(
    ml_client, agent, decide, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")

    with django_capture_on_commit_callbacks(execute=True):
        response = ml_client.post(
            "/exports/build/",
            build_form(new_only="on", sources=["approve"], error_categories=["__none__"]),
        )

    assert response.status_code == 302
    assert response["Location"] == "/exports/?agent=support-bot"
    batch = ExportBatch.objects.get()
    assert batch.filters["new_only"] is True
    assert batch.filters["error_categories"] == [None]
    assert batch.status == ExportBatch.Status.READY  # eager Celery ran it at the commit


def test_it_answers_htmx_with_the_batch_list(ml_client, agent, decide):
    decide(agent, "Q", "A")

    response = ml_client.post("/exports/build/", build_form(), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section class="card" id="batches"')
    batch = ExportBatch.objects.get()
    # Queued: the row polls for its progress.
    assert f'id="batch-{batch.pk}"' in html and 'hx-trigger="every 1s"' in html


def test_it_shows_form_errors_in_the_page(ml_client, agent):
    response = ml_client.post(
        "/exports/build/", build_form(format="preference", sources=["approve"])
    )

    assert response.status_code == 400
    assert "preference batches hold corrections only" in response.content.decode()
    assert not ExportBatch.objects.exists()


def test_it_retargets_form_errors_for_htmx(ml_client, agent):
    response = ml_client.post(
        "/exports/build/", build_form(format="csv", system_prompt="Hi"), headers=HTMX
    )

    assert response.status_code == 400
    assert response["HX-Retarget"] == "#build_form"
    assert response["HX-Reswap"] == "outerHTML"
    assert "applies to the openai format only" in response.content.decode()


def test_it_queues_a_feedback_export(ml_client, agent):
    FeedbackEventFactory(interaction__agent=agent, kind="clicked")

    response = ml_client.post(
        "/exports/build/",
        {"dataset": "feedback", "agent": "support-bot", "format": "parquet", "kinds": ["clicked"]},
    )

    assert response.status_code == 302
    batch = ExportBatch.objects.get()
    assert (batch.dataset, batch.format, batch.filters["kinds"]) == (
        "feedback",
        "parquet",
        ["clicked"],
    )


def test_it_polls_a_building_batch_until_it_is_finished(ml_client, agent, decide, ml):
    decide(agent, "Q", "A")
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    polling = ml_client.get(f"/exports/{batch.pk}/row/", headers=HTMX)
    services.batch_build(batch_id=batch.pk)
    done = ml_client.get(f"/exports/{batch.pk}/row/", headers=HTMX)

    assert polling.status_code == 200
    assert "<progress" in polling.content.decode() and "hx-trigger" in polling.content.decode()
    assert done.status_code == 286  # htmx stops polling
    assert "Download" in done.content.decode() and "hx-trigger" not in done.content.decode()


def test_it_shows_why_a_batch_failed_and_retries_it(
    ml_client, agent, decide, build, monkeypatch, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")
    monkeypatch.setattr(formats.JsonlWriter, "write", lambda *a: 1 / 0)
    batch = build(agent, "jsonl", expect="failed")
    monkeypatch.undo()
    row = ml_client.get(f"/exports/{batch.pk}/row/").content.decode()
    assert "ZeroDivisionError" in row and "Retry" in row

    with django_capture_on_commit_callbacks(execute=True):
        response = ml_client.post(f"/exports/{batch.pk}/retry/", headers=HTMX)

    assert response.status_code == 200
    assert f'id="batch-{batch.pk}"' in response.content.decode()
    assert ExportBatch.objects.get(pk=batch.pk).status == ExportBatch.Status.READY


def test_it_redirects_a_plain_retry_back_to_the_page(ml_client, agent, decide, build):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    response = ml_client.post(f"/exports/{batch.pk}/retry/")

    assert response.status_code == 302  # not failed: a message explains, nothing changes
    assert ExportBatch.objects.get(pk=batch.pk).status == ExportBatch.Status.READY


def test_it_marks_a_batch_as_used_to_train_a_version(ml_client, agent, decide, build):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    response = ml_client.post(
        f"/exports/{batch.pk}/trained/", {"agent_version": "v2"}, headers=HTMX
    )

    assert response.status_code == 200
    assert "trained v2" in response.content.decode()
    assert ExportBatch.objects.get(pk=batch.pk).trained_agent_version == "v2"


def test_it_downloads_a_ready_batch_with_its_size_and_checksum(
    ml_client, agent, tricky_pairs, build
):
    batch = build(agent, "csv")

    response = ml_client.get(f"/exports/{batch.pk}/download/")

    body = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(body)) == str(batch.file_size)
    assert response["X-Content-SHA256"] == hashlib.sha256(body).hexdigest() == batch.sha256
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="support-bot-csv-batch-{batch.pk}.csv"' in response["Content-Disposition"]


def test_it_downloads_the_manifest(ml_client, agent, decide, build):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    response = ml_client.get(f"/exports/{batch.pk}/manifest/")

    assert response.status_code == 200
    import json

    assert json.loads(b"".join(response.streaming_content))["sha256"] == batch.sha256


def test_it_refuses_to_download_an_unfinished_batch(ml_client, agent, ml):
    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    unfinished = ml_client.get(f"/exports/{batch.pk}/download/")
    assert unfinished.status_code == 409
    assert not hasattr(unfinished, "streaming_content")  # no file is sent
    missing = ml_client.get("/exports/999999/download/")
    assert missing.status_code == 404
    assert b"Not found" in missing.content


def test_it_paginates_the_batches(ml_client, agent, decide, build, settings):
    settings.EXPORT_PAGE_SIZE = 2
    decide(agent, "Q", "A")
    first = build(agent, "jsonl")
    build(agent, "jsonl"), build(agent, "jsonl")

    page_two = ml_client.get("/exports/?page=2").content.decode()

    assert f'id="batch-{first.pk}"' in page_two
    assert "Page 2 of 2" in page_two


def test_it_links_the_exports_page_in_the_navigation(client):
    client.force_login(UserFactory(username="ml2", roles=["ml"]))

    assert 'href="/exports/"' in client.get("/exports/").content.decode()


# --- issue 17: the request guards, as the page shows them --------------------------------------


def test_it_shows_why_an_empty_selection_is_refused(ml_client, agent):
    response = ml_client.post("/exports/build/", build_form())

    assert response.status_code == 400
    assert "Nothing to export: no training pairs match these filters." in (
        response.content.decode()
    )
    assert not ExportBatch.objects.exists()


def test_it_refuses_a_date_in_the_future_on_the_page(ml_client, agent, decide):
    decide(agent, "Q", "A")

    response = ml_client.post("/exports/build/", build_form(date_to="9999-12-31"))

    assert response.status_code == 400
    assert "must not be in the future" in response.content.decode()
    assert not ExportBatch.objects.exists()


def test_it_offers_the_identical_batch_with_a_link(ml_client, agent, decide, build):
    decide(agent, "Q", "A")
    first = build(agent, "jsonl")

    response = ml_client.post("/exports/build/", build_form(), follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(f"/exports/?agent=support-bot#batch-{first.pk}", 302)]
    assert (
        f"An identical batch (#{first.pk}, ready) already exists: "
        f'<a href="/exports/?agent=support-bot#batch-{first.pk}">see batch #{first.pk}</a>.'
    ) in html
    assert ExportBatch.objects.count() == 1


def test_it_offers_the_identical_batch_to_htmx_in_the_form(ml_client, agent, decide, build):
    decide(agent, "Q", "A")
    first = build(agent, "jsonl")

    response = ml_client.post("/exports/build/", build_form(), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#build_form" and response["HX-Reswap"] == "outerHTML"
    assert (
        f'<a href="/exports/?agent=support-bot#batch-{first.pk}">see batch #{first.pk}</a>' in html
    )
    assert ExportBatch.objects.count() == 1


def test_it_shows_the_per_user_limit(ml_client, agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 1
    decide(agent, "Q", "A")
    ExportBatch.objects.create(agent=agent, format="csv", created_by=ml)  # queued

    response = ml_client.post("/exports/build/", build_form())

    assert response.status_code == 429
    assert "You already have 1 batch queued or building (the limit is 1)" in (
        response.content.decode()
    )
    assert ExportBatch.objects.count() == 1


def test_it_picks_the_agent_without_an_inline_handler(ml_client, agent):
    html = ml_client.get("/exports/").content.decode()

    assert 'id="agent-picker"' in html and "onchange" not in html
    assert '<script src="/static/retraining/exports.js" defer></script>' in html
