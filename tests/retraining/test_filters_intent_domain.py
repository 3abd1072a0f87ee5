"""Exports filtered by the interaction's intent and domain ("retrain on a class of
failures"): the service, the selection and the file, the page, the API and the command."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from agents.models import Interaction
from retraining import selectors, services
from retraining.models import ExportBatch
from tests.factories import FeedbackEventFactory, InteractionFactory

pytestmark = pytest.mark.django_db


def tag(pair, intent="", domain=""):
    """Gives the pair's interaction these tags (as if ingested with them)."""
    Interaction.objects.filter(pk=pair.interaction_id).update(intent=intent, domain=domain)
    return pair


@pytest.fixture
def tagged(agent, decide):
    """Six pairs: (intent, domain, category) = name → pair."""
    specs = {
        "refund-billing-tone": ("refund", "billing", "tone"),
        "refund-billing-none": ("refund", "billing", None),
        "refund-shipping-tone": ("refund", "shipping", "tone"),
        "cancel-billing-tone": ("cancel", "billing", "tone"),
        "cancel-shipping-none": ("cancel", "shipping", None),
        "untagged-tone": ("", "", "tone"),
    }
    pairs = {}
    for name, (intent, domain, category) in specs.items():
        if category:
            pair = decide(
                agent, name, "A", verdict="correct", corrected=f"{name}!", category=category
            )
        else:
            pair = decide(agent, name, f"{name}!")
        pairs[name] = tag(pair, intent, domain)
    return pairs


def file_pair_ids(batch: ExportBatch) -> set[int]:
    lines = Path(batch.file.path).read_text(encoding="utf-8").splitlines()
    return {json.loads(line)["pair_id"] for line in lines}


def ids(pairs, *names):
    return {pairs[name].pk for name in names}


# --- the selection and the file ----------------------------------------------------------------


def test_it_writes_only_the_pairs_of_the_intent(agent, tagged, build):
    batch = build(agent, "jsonl", filters={"intents": ["refund"]})

    assert file_pair_ids(batch) == ids(
        tagged, "refund-billing-tone", "refund-billing-none", "refund-shipping-tone"
    )
    assert batch.row_count == 3


def test_it_writes_only_the_pairs_of_the_domains(agent, tagged, build):
    batch = build(agent, "jsonl", filters={"domains": ["shipping"]})

    assert file_pair_ids(batch) == ids(tagged, "refund-shipping-tone", "cancel-shipping-none")


def test_it_combines_intent_and_domain_with_an_error_category(agent, tagged, build):
    by_intent = build(agent, "jsonl", filters={"intents": ["refund"], "error_categories": ["tone"]})
    by_domain = build(
        agent, "jsonl", filters={"domains": ["billing"], "error_categories": ["tone"]}
    )
    both = build(
        agent,
        "jsonl",
        filters={
            "intents": ["cancel", "refund"],
            "domains": ["billing"],
            "error_categories": ["tone"],
        },
    )

    assert file_pair_ids(by_intent) == ids(tagged, "refund-billing-tone", "refund-shipping-tone")
    assert file_pair_ids(by_domain) == ids(tagged, "refund-billing-tone", "cancel-billing-tone")
    assert file_pair_ids(both) == ids(tagged, "refund-billing-tone", "cancel-billing-tone")


def test_it_counts_the_filtered_selection_at_request_time(agent, tagged, ml):
    batch = services.batch_request(
        agent=agent, format="csv", actor=ml, enqueue=False, filters={"intents": ["cancel"]}
    )

    assert batch.counts["estimated_rows"] == 2


def test_it_refuses_an_intent_no_pair_has(agent, tagged, ml):
    with pytest.raises(services.InvalidRequest) as caught:
        services.batch_request(
            agent=agent,
            format="jsonl",
            actor=ml,
            enqueue=False,
            refuse_empty=True,
            filters={"intents": ["nobody-asks-this"]},
        )

    assert set(caught.value.errors) == {"selection"}


def test_it_filters_the_feedback_log_by_its_interactions_tags(agent, build):
    refund = InteractionFactory(agent=agent, intent="refund", domain="billing")
    cancel = InteractionFactory(agent=agent, intent="cancel", domain="billing")
    FeedbackEventFactory(interaction=refund)
    FeedbackEventFactory(interaction=cancel)

    batch = build(agent, "csv", dataset="feedback", filters={"intents": ["refund"]})

    rows = list(csv.DictReader(io.StringIO(Path(batch.file.path).read_text(encoding="utf-8"))))
    assert [row["external_id"] for row in rows] == [refund.external_id]


# --- validation and normalisation --------------------------------------------------------------


def test_it_normalises_the_lists(db):
    clean = services.filters_clean(
        dataset="pairs",
        format="jsonl",
        filters={"intents": [" refund", "cancel", "refund "], "domains": ["billing"]},
    )

    assert clean["intents"] == ["cancel", "refund"]
    assert clean["domains"] == ["billing"]


@pytest.mark.parametrize("dataset", ["pairs", "feedback"])
@pytest.mark.parametrize("key", ["intents", "domains"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["refund", "  "], "must not hold empty values"),
        (["x" * 101], "each must be at most 100 characters"),
        ([f"i{n}" for n in range(101)], "must hold at most 100 values"),
        ("refund", "must be a list of strings"),
        ([1], "must be a list of strings"),
    ],
)
def test_it_refuses_bad_lists_naming_the_field(db, dataset, key, value, message):
    with pytest.raises(services.InvalidRequest) as caught:
        services.filters_clean(dataset=dataset, format="csv", filters={key: value})

    assert caught.value.errors == {key: message}


def test_it_accepts_the_largest_lists(db):
    values = [f"{n:03d}" + "x" * 97 for n in range(100)]

    clean = services.filters_clean(dataset="pairs", format="jsonl", filters={"intents": values})

    assert clean["intents"] == values


# --- the batch: manifest, summary, identical requests ------------------------------------------


def test_it_copies_the_filters_into_the_manifest(agent, tagged, build):
    batch = build(agent, "jsonl", filters={"intents": ["refund"], "domains": ["billing"]})

    stored = json.loads(Path(batch.manifest_file.path).read_text(encoding="utf-8"))
    assert stored["filters"]["intents"] == ["refund"]
    assert stored["filters"]["domains"] == ["billing"]
    assert stored["filters"] == batch.manifest["filters"] == batch.filters


def test_it_summarises_the_filters_in_a_few_words():
    batch = ExportBatch(filters={"intents": ["refund"], "domains": ["billing", "shipping"]})

    assert batch.filters_summary == ["intent refund", "domains billing, shipping"]


def test_it_offers_the_identical_batch_filtered_the_same_way(agent, tagged, ml):
    def ask(filters):
        return services.batch_request(
            agent=agent, format="jsonl", actor=ml, enqueue=False, reuse_existing=True,
            filters=filters,
        )  # fmt: skip

    first = ask({"intents": ["refund", "cancel"]})

    with pytest.raises(services.BatchExists) as caught:
        ask({"intents": ["cancel", " refund"]})  # the same, once normalised
    assert caught.value.batch.pk == first.pk
    other = ask({"intents": ["refund"]})
    assert other.pk != first.pk


def test_it_still_finds_an_identical_batch_stored_before_these_filters(agent, tagged, ml):
    first = services.batch_request(agent=agent, format="jsonl", actor=ml, enqueue=False)
    older = {k: v for k, v in first.filters.items() if k not in ("intents", "domains")}
    ExportBatch.objects.filter(pk=first.pk).update(filters=older)

    with pytest.raises(services.BatchExists) as caught:
        services.batch_request(
            agent=agent, format="jsonl", actor=ml, enqueue=False, reuse_existing=True
        )

    assert caught.value.batch.pk == first.pk


# --- the form's options ------------------------------------------------------------------------


def test_it_lists_the_tags_of_the_agents_recent_pairs(agent, tagged, monkeypatch):
    assert selectors.pair_tags(agent) == {
        "intents": ["cancel", "refund"],
        "domains": ["billing", "shipping"],
    }
    monkeypatch.setattr(selectors, "TAGS_SAMPLE_PAIRS", 2)  # the latest two: untagged, cancel
    assert selectors.pair_tags(agent) == {"intents": ["cancel"], "domains": ["shipping"]}
    assert selectors.pair_tags(None) == {"intents": [], "domains": []}


# --- the page ----------------------------------------------------------------------------------


@pytest.fixture
def ml_client(client, ml):
    client.force_login(ml)
    return client


def test_the_page_offers_the_agents_intents_and_domains(ml_client, agent, tagged):
    html = ml_client.get("/exports/?agent=support-bot").content.decode()

    assert '<option value="refund">refund</option>' in html
    assert '<option value="shipping">shipping</option>' in html


def test_the_page_queues_a_batch_filtered_by_intent_and_domain(ml_client, agent, tagged):
    response = ml_client.post(
        "/exports/build/",
        {"agent": "support-bot", "dataset": "pairs", "format": "jsonl", "min_reviews": 1,
         "intents": ["refund"], "domains": ["billing", "shipping"]},
    )  # fmt: skip

    assert response.status_code == 302
    batch = ExportBatch.objects.get()
    assert batch.filters["intents"] == ["refund"]
    assert batch.filters["domains"] == ["billing", "shipping"]
    assert batch.counts["estimated_rows"] == 3


def test_the_page_refuses_an_intent_the_agent_does_not_have(ml_client, agent, tagged):
    response = ml_client.post(
        "/exports/build/",
        {"agent": "support-bot", "dataset": "pairs", "format": "jsonl", "intents": ["nope"]},
    )

    assert response.status_code == 400
    assert response.context["build_form"].errors["intents"]
    assert not ExportBatch.objects.exists()


def test_the_feedback_form_shows_the_services_message_on_the_field(ml_client, agent):
    response = ml_client.post(
        "/exports/build/",
        {"agent": "support-bot", "dataset": "feedback", "format": "csv", "domains": "x" * 101},
    )

    assert response.status_code == 400
    assert response.context["feedback_form"].errors["domains"] == [
        "each must be at most 100 characters"
    ]


# --- the API -----------------------------------------------------------------------------------


def test_the_api_queues_a_batch_filtered_by_intent(
    api_client, ml, agent, tagged, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = api_client(ml).post(
            "/api/v1/exports",
            {"agent": "support-bot", "format": "jsonl", "filters": {"intents": ["cancel"]}},
        )

    assert response.status_code == 202
    batch = ExportBatch.objects.get()
    assert batch.filters["intents"] == ["cancel"] and batch.counts["estimated_rows"] == 2


@pytest.mark.parametrize(
    ("filters", "field"),
    [({"intents": [""]}, "intents"), ({"domains": ["x" * 101]}, "domains"),
     ({"domains": "billing"}, "domains")],
)  # fmt: skip
def test_the_api_answers_400_naming_the_field(api_client, ml, agent, tagged, filters, field):
    response = api_client(ml).post(
        "/api/v1/exports", {"agent": "support-bot", "format": "jsonl", "filters": filters}
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert not ExportBatch.objects.exists()


# --- the command -------------------------------------------------------------------------------


def export_batch(*args):
    out = io.StringIO()
    call_command("export_batch", "--agent", "support-bot", *args, stdout=out)
    return dict(line.split(" ", 1) for line in out.getvalue().splitlines())


def test_the_command_takes_repeated_intents_and_domains(agent, tagged):
    printed = export_batch(
        "--format", "jsonl", "--intent", "refund", "--intent", "cancel", "--domain", "shipping"
    )

    batch = ExportBatch.objects.get(pk=int(printed["id"]))
    assert batch.filters["intents"] == ["cancel", "refund"]
    assert batch.filters["domains"] == ["shipping"]
    assert file_pair_ids(batch) == ids(tagged, "refund-shipping-tone", "cancel-shipping-none")


def test_the_command_exits_2_naming_the_bad_filter(agent, tagged):
    with pytest.raises(CommandError) as caught:
        export_batch("--format", "jsonl", "--domain", " ")

    assert caught.value.returncode == 2
    assert str(caught.value) == "domains: must not hold empty values"
    assert not ExportBatch.objects.exists()
