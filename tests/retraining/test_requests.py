"""The guards of a batch request (issue 17): nothing to export, an identical batch already
there, the same limits on every field whatever the caller, and per-user limits on what
builds at once. The page's and the API's answers are in test_views.py and test_api.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from retraining import services
from retraining.models import ExportBatch
from tests.factories import AgentFactory, FeedbackEventFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = ExportBatch.Status


def request(agent, actor, **kwargs):
    kwargs.setdefault("format", "jsonl")
    return services.batch_request(agent=agent, actor=actor, enqueue=False, **kwargs)


# --- nothing to export -------------------------------------------------------------------------


def test_it_fails_a_build_that_finds_no_rows_with_the_reason(agent, decide, build, media):
    decide(agent, "Q", "A")
    build(agent, "jsonl", new_only=True)  # holds the only pair

    empty = build(agent, "jsonl", new_only=True, expect="failed")

    assert empty.row_count == 0 and not empty.file and not empty.sha256
    assert empty.failure_reason == (
        "Nothing to export: no training pairs matched this batch's filters "
        "(only pairs in no earlier batch) when it was built."
    )
    assert empty.counts.get("rows") is None  # never shown as a ready 0-row batch


def test_it_fails_an_empty_feedback_build_with_the_reason(agent, build):
    empty = build(agent, "csv", dataset="feedback", expect="failed")

    assert empty.failure_reason.startswith("Nothing to export: no feedback events matched")


def test_it_refuses_a_request_whose_selection_is_empty(agent, decide, ml):
    decide(agent, "Q", "A", verdict="approve")

    with pytest.raises(services.InvalidRequest) as caught:
        request(agent, ml, filters={"sources": ["correct"]}, refuse_empty=True)

    assert caught.value.errors == {
        "selection": "Nothing to export: no training pairs match these filters."
    }
    assert not ExportBatch.objects.exists()


def test_it_refuses_a_request_for_only_new_pairs_when_there_are_none(agent, decide, build, ml):
    decide(agent, "Q", "A")
    build(agent, "jsonl", new_only=True)

    with pytest.raises(services.InvalidRequest) as caught:
        request(agent, ml, new_only=True, refuse_empty=True)

    assert caught.value.errors["selection"] == (
        "Nothing to export: no training pairs match these filters "
        "(every matching pair is already in a batch)."
    )
    assert ExportBatch.objects.count() == 1


def test_it_records_the_size_of_the_selection_with_the_request(agent, decide, ml):
    for n in range(3):
        decide(agent, f"Q{n}", "A")

    batch = request(agent, ml, refuse_empty=True)

    assert batch.counts == {"estimated_rows": 3}


# --- an identical batch ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.READY, Status.BUILDING, Status.QUEUED])
def test_it_offers_the_identical_batch_instead_of_building_again(agent, decide, ml, status):
    decide(agent, "Q", "A")
    first = request(agent, ml, filters={"sources": ["approve"]}, reuse_existing=True)
    if status != Status.QUEUED:
        services.batch_build(batch_id=first.pk)
        if status == Status.BUILDING:
            ExportBatch.objects.filter(pk=first.pk).update(status=Status.BUILDING)

    with pytest.raises(services.BatchExists) as caught:
        request(agent, ml, filters={"sources": ["approve"]}, reuse_existing=True)

    assert caught.value.batch.pk == first.pk
    assert str(caught.value) == f"An identical batch (#{first.pk}, {status}) already exists."
    assert ExportBatch.objects.count() == 1


def test_it_builds_again_when_the_selection_has_new_rows(agent, decide, ml):
    decide(agent, "Q1", "A")
    first = request(agent, ml, reuse_existing=True)
    services.batch_build(batch_id=first.pk)
    other = AgentFactory(slug="other-bot", domain="support")
    decide(other, "Elsewhere", "A")  # a later data cutoff, but nothing new for this agent

    with pytest.raises(services.BatchExists):
        request(agent, ml, reuse_existing=True)

    decide(agent, "Q2", "A")
    second = request(agent, ml, reuse_existing=True)
    assert second.pk != first.pk and second.cutoff_id > first.cutoff_id


def test_it_builds_again_when_anything_else_differs(agent, decide, ml):
    decide(agent, "Q", "A")
    first = request(agent, ml, reuse_existing=True)
    services.batch_build(batch_id=first.pk)

    others = [
        request(agent, ml, format="csv", reuse_existing=True),
        request(agent, ml, filters={"sources": ["approve"]}, reuse_existing=True),
    ]

    assert len({first.pk, *(b.pk for b in others)}) == 3


def test_it_does_not_offer_a_failed_batch(agent, decide, ml):
    decide(agent, "Q", "A")
    first = request(agent, ml, reuse_existing=True)
    ExportBatch.objects.filter(pk=first.pk).update(status=Status.FAILED)

    second = request(agent, ml, reuse_existing=True)

    assert second.pk != first.pk


# --- one validation path, the same limits ------------------------------------------------------

TOMORROW = "tomorrow"


@pytest.mark.parametrize(
    ("filters", "field", "message"),
    [
        ({"date_to": "9999-12-31"}, "date_to", "must not be in the future"),
        ({"date_from": TOMORROW}, "date_from", "must not be in the future"),
        ({"date_from": "1999-12-31"}, "date_from", "must be 2000-01-01 or later"),
        ({"date_from": "20261120"}, "date_from", "must be a date, YYYY-MM-DD"),
        ({"date_from": "2026-W47-1"}, "date_from", "must be a date, YYYY-MM-DD"),
        ({"system_prompt": "x" * 20_001}, "system_prompt", "must be at most 20000 characters"),
        ({"agent_versions": [f"v{n}" for n in range(101)]}, "agent_versions",
         "must hold at most 100 values"),
        ({"agent_versions": ["v" * 101]}, "agent_versions",
         "each must be at most 100 characters"),
        ({"error_categories": ["tone"] * 101}, "error_categories",
         "must hold at most 100 values"),
        ({"sources": ["approve"] * 101}, "sources", "must hold at most 100 values"),
        ({"min_reviews": 11}, "min_reviews", "must be a whole number from 1 to 10"),
        ({"new_only": "yes"}, "new_only", "must be true or false"),
    ],
)  # fmt: skip
def test_it_applies_the_same_limits_to_every_field(agent, ml, filters, field, message):
    if filters.get("date_from") == TOMORROW:
        filters = {"date_from": (timezone.now() + timedelta(days=2)).date().isoformat()}
    fmt = "openai" if "system_prompt" in filters else "jsonl"

    with pytest.raises(services.InvalidRequest) as caught:
        request(agent, ml, format=fmt, filters=filters)

    assert caught.value.errors[field] == message
    assert not ExportBatch.objects.exists()


def test_it_accepts_today_and_a_prompt_of_the_largest_size(agent, decide, ml):
    decide(agent, "Q", "A")
    today = timezone.now().date().isoformat()

    batch = request(
        agent, ml, format="openai", filters={"date_to": today, "system_prompt": "x" * 20_000}
    )

    assert batch.filters["date_to"] == today and len(batch.filters["system_prompt"]) == 20_000


def test_the_page_caps_the_system_prompt_at_the_service_limit():
    from retraining.forms import BuildForm

    form = BuildForm()
    widget_max = form.fields["system_prompt"].widget.attrs["maxlength"]

    assert widget_max == services.SYSTEM_PROMPT_MAX_CHARS == 20_000


# --- per-user limits ---------------------------------------------------------------------------


def test_it_limits_the_batches_a_user_has_building_at_once(agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 2
    decide(agent, "Q", "A")
    request(agent, ml, format="jsonl")
    building = request(agent, ml, format="csv")
    ExportBatch.objects.filter(pk=building.pk).update(status=Status.BUILDING)

    with pytest.raises(services.TooManyActive) as caught:
        request(agent, ml, format="parquet")

    assert str(caught.value) == (
        "You already have 2 batches queued or building (the limit is 2): wait for one to finish."
    )
    assert ExportBatch.objects.count() == 2
    other = UserFactory(username="mo2", roles=["ml"])
    assert request(agent, other, format="parquet").created_by == other


def test_it_stops_counting_a_batch_once_it_is_finished(agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 1
    decide(agent, "Q", "A")
    first = request(agent, ml, format="jsonl")
    services.batch_build(batch_id=first.pk)

    assert request(agent, ml, format="csv").status == Status.QUEUED


def test_it_limits_the_rows_a_user_has_building_at_once(agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_ROWS_PER_USER = 3
    decide(agent, "Q1", "A")
    decide(agent, "Q2", "B")
    request(agent, ml, format="jsonl")  # 2 rows

    with pytest.raises(services.TooManyActive) as caught:
        request(agent, ml, format="csv")  # 2 more: 4 > 3

    assert str(caught.value) == (
        "Your batches queued or building already hold 2 rows; this one would add 2, over "
        "the limit of 3: wait for one to finish."
    )


def test_it_lets_one_batch_alone_exceed_the_row_limit(agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_ROWS_PER_USER = 1
    decide(agent, "Q1", "A")
    decide(agent, "Q2", "B")

    assert request(agent, ml).counts == {"estimated_rows": 2}


def test_it_limits_feedback_exports_too(agent, ml, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 1
    FeedbackEventFactory(interaction__agent=agent, kind="clicked")
    request(agent, ml, format="csv", dataset="feedback")

    with pytest.raises(services.TooManyActive):
        request(agent, ml, format="parquet", dataset="feedback")


def test_it_applies_the_limits_to_a_retry_too(agent, decide, ml, settings):
    settings.EXPORT_MAX_ACTIVE_PER_USER = 1
    decide(agent, "Q", "A")
    failed = request(agent, ml, format="csv")
    ExportBatch.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    request(agent, ml, format="jsonl")  # queued: the one allowed

    with pytest.raises(services.TooManyActive):
        services.batch_retry(batch=ExportBatch.objects.get(pk=failed.pk), actor=ml)

    assert ExportBatch.objects.get(pk=failed.pk).status == Status.FAILED
