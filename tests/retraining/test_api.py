"""POST /api/v1/exports, GET /api/v1/exports/{id}, GET /api/v1/exports/{id}/download."""

import hashlib

import pytest

from retraining.models import ExportBatch

pytestmark = pytest.mark.django_db


def test_it_refuses_a_request_without_a_token(api_client):
    response = api_client().post("/api/v1/exports", {"agent": "a", "format": "jsonl"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}
    assert not ExportBatch.objects.exists()


def test_it_refuses_a_token_without_the_ml_role(api_client, reviewer):
    response = api_client(reviewer).post("/api/v1/exports", {"agent": "a", "format": "jsonl"})

    assert response.status_code == 403
    assert response.json()["detail"].startswith("this token's user needs one of the roles")
    assert not ExportBatch.objects.exists()


def test_it_queues_a_batch_and_answers_its_id_and_status(
    api_client, ml, agent, decide, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")

    with django_capture_on_commit_callbacks(execute=False):
        response = api_client(ml).post(
            "/api/v1/exports",
            {"agent": "support-bot", "format": "parquet", "new_only": True,
             "filters": {"sources": ["approve"]}},
        )  # fmt: skip

    assert response.status_code == 202
    batch = ExportBatch.objects.get()
    assert response.json() == {"id": batch.pk, "status": "queued", "already_existed": False}
    assert batch.filters["new_only"] is True and batch.created_by == ml


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "nobody", "format": "jsonl"}, "agent"),
        ({"agent": "support-bot", "format": "xlsx"}, "format"),
        (
            {"agent": "support-bot", "format": "jsonl", "filters": {"min_reviews": "two"}},
            "min_reviews",
        ),
    ],
)
def test_it_answers_400_with_field_errors(api_client, ml, agent, body, field):
    response = api_client(ml).post("/api/v1/exports", body)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_it_answers_400_for_a_malformed_body(api_client, ml):
    response = api_client(ml).post("/api/v1/exports", {"format": "jsonl"})

    assert response.status_code == 400
    assert "agent" in response.json()["errors"]


def test_it_describes_a_batch(api_client, ml, agent, tricky_pairs, build):
    batch = build(agent, "jsonl")

    body = api_client(ml).get(f"/api/v1/exports/{batch.pk}").json()

    assert body["id"] == batch.pk and body["status"] == "ready"
    assert body["row_count"] == 8 and body["sha256"] == batch.sha256
    assert body["counts"]["by_split"] == {"train": 8, "validation": 0}
    assert body["manifest"]["sha256"] == batch.sha256
    assert body["download_url"] == f"/api/v1/exports/{batch.pk}/download"


def test_it_answers_404_for_an_unknown_batch(api_client, ml):
    for url in ("/api/v1/exports/424242", "/api/v1/exports/424242/download"):
        response = api_client(ml).get(url)
        assert response.status_code == 404
        assert response.json()["detail"] == "no such batch"


def test_it_streams_the_file_with_its_size_and_checksum(api_client, ml, agent, tricky_pairs, build):
    batch = build(agent, "parquet")

    response = api_client(ml).get(f"/api/v1/exports/{batch.pk}/download")

    body = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert response.streaming
    assert int(response["Content-Length"]) == len(body) == batch.file_size
    assert response["X-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    assert response["Content-Type"] == "application/vnd.apache.parquet"


def test_it_answers_409_while_a_batch_is_not_ready(api_client, ml, agent):
    from retraining import services

    batch = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)

    response = api_client(ml).get(f"/api/v1/exports/{batch.pk}/download")

    assert response.status_code == 409
    assert "queued" in response.json()["detail"]


def test_it_lists_recent_batches(api_client, ml, agent, decide, build):
    decide(agent, "Q", "A")
    first, second = build(agent, "jsonl"), build(agent, "csv")

    body = api_client(ml).get("/api/v1/exports?agent=support-bot&status=ready").json()

    assert [b["id"] for b in body["batches"]] == [second.pk, first.pk]


def test_it_marks_a_batch_as_used_to_train_a_version(api_client, ml, agent, decide, build):
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")

    response = api_client(ml).post(
        f"/api/v1/exports/{batch.pk}/trained", {"agent_version": "2026.12.1"}
    )

    assert response.status_code == 200
    assert response.json()["trained_agent_version"] == "2026.12.1"


def test_it_documents_the_export_endpoints_in_the_openapi_schema(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]

    assert {
        "/api/v1/exports",
        "/api/v1/exports/{batch_id}",
        "/api/v1/exports/{batch_id}/download",
    } <= set(paths)


# --- issue 17: the request guards, as the API answers them -------------------------------------


def test_it_answers_400_for_a_date_far_in_the_future(api_client, ml, agent, decide):
    decide(agent, "Q", "A")

    response = api_client(ml).post(
        "/api/v1/exports",
        {"agent": "support-bot", "format": "jsonl", "filters": {"date_to": "9999-12-31"}},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"date_to": "must not be in the future"}
    assert not ExportBatch.objects.exists()


def test_it_caps_the_system_prompt_as_the_page_does(api_client, ml, agent, decide):
    decide(agent, "Q", "A")

    response = api_client(ml).post(
        "/api/v1/exports",
        {"agent": "support-bot", "format": "openai", "filters": {"system_prompt": "x" * 20_001}},
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"system_prompt": "must be at most 20000 characters"}


def test_it_answers_400_when_nothing_matches(api_client, ml, agent):
    response = api_client(ml).post("/api/v1/exports", {"agent": "support-bot", "format": "csv"})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "invalid request",
        "errors": {"selection": "Nothing to export: no training pairs match these filters."},
    }
    assert not ExportBatch.objects.exists()


def test_it_answers_with_the_identical_batch_that_already_exists(
    api_client, ml, agent, decide, django_capture_on_commit_callbacks
):
    decide(agent, "Q", "A")
    body = {"agent": "support-bot", "format": "jsonl", "filters": {"sources": ["approve"]}}
    with django_capture_on_commit_callbacks(execute=True):  # eager Celery builds it
        first = api_client(ml).post("/api/v1/exports", body)

    again = api_client(ml).post("/api/v1/exports", body)

    batch = ExportBatch.objects.get()
    assert first.status_code == 202
    assert first.json() == {"id": batch.pk, "status": "queued", "already_existed": False}
    assert again.status_code == 200
    assert again.json() == {"id": batch.pk, "status": "ready", "already_existed": True}


def test_it_answers_429_over_the_per_user_limit(api_client, ml, agent, decide, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 1
    decide(agent, "Q", "A")
    ExportBatch.objects.create(agent=agent, format="csv", created_by=ml)  # queued

    response = api_client(ml).post("/api/v1/exports", {"agent": "support-bot", "format": "jsonl"})

    assert response.status_code == 429
    assert response.json()["detail"] == (
        "You already have 1 batch queued or building (the limit is 1): wait for one to finish."
    )
    assert ExportBatch.objects.count() == 1


def test_it_documents_the_answers_to_a_request_in_the_schema(client):
    operation = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/exports"]["post"]

    responses = operation["responses"]
    assert {"200", "202", "400", "429"} <= set(responses)
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["ExportCreated"]
    assert "already_existed" in schema["properties"]
    assert "identical" in schema["properties"]["already_existed"]["description"]


def test_it_names_a_few_unknown_filters_and_counts_the_rest(api_client, ml, agent, decide):
    decide(agent, "Q", "A")
    filters = {f"k{n:05}": 1 for n in range(65_000)}

    response = api_client(ml).post(
        "/api/v1/exports", {"agent": "support-bot", "format": "csv", "filters": filters}
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "filters": "at most 32 filters; unknown filter(s) k00000, k00001, k00002, k00003, "
        "k00004 and 64995 more"
    }
    assert not ExportBatch.objects.exists()


def test_it_names_every_unknown_filter_of_a_short_list(api_client, ml, agent, decide):
    decide(agent, "Q", "A")
    filters = {"zeta": 1, "sources": ["approve"], "alpha": 2}

    response = api_client(ml).post(
        "/api/v1/exports", {"agent": "support-bot", "format": "csv", "filters": filters}
    )

    assert response.status_code == 400
    assert response.json()["errors"]["filters"] == "unknown filter(s) zeta, alpha"
