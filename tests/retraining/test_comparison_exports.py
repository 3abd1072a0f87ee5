"""The `comparisons` export dataset (registered by evals: evals/exports.py): decided pairwise
comparisons with a winner as preference rows, frozen at request time."""

import io
import json
from datetime import timedelta

import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from evals import claims as eval_claims
from evals import exports
from evals import services as eval_services
from evals.models import Comparison
from retraining import services, sources
from retraining.models import ExportBatch
from tests.evals.factories import ComparisonFactory
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DONE = Comparison.Status.DONE


@pytest.fixture
def judge(db):
    return UserFactory(username="judy", roles=["reviewer"], domains=["support", "billing"])


@pytest.fixture
def decide(judge):
    """decide({comparison_id: choice}): `judge` claims and votes on each through
    evals.services, as the pairwise queue does (one review required)."""

    def run(choices: dict[int, str]) -> None:
        left = dict(choices)
        others = tuple(Comparison.objects.exclude(pk__in=left).values_list("pk", flat=True))
        while left:
            comparison = eval_claims.comparison_claim(reviewer=judge, exclude=others)
            assert comparison is not None and comparison.pk in left, (comparison, left)
            eval_services.comparison_decide(
                reviewer=judge,
                comparison_id=comparison.pk,
                choice=left.pop(comparison.pk),
                version=comparison.version,
            )

    return run


@pytest.fixture
def ml_client(client, ml):
    client.force_login(ml)
    return client


def decided(agent, outcome, **fields):
    """A comparison already done with `outcome` (as the factory writes rows)."""
    fields.setdefault("decided_at", timezone.now())
    return ComparisonFactory(agent=agent, status=DONE, outcome=outcome, **fields)


def lines(batch) -> list[dict]:
    with open(batch.file.path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_the_evals_app_registers_the_dataset():
    source = sources.get("comparisons")
    assert source is exports.SOURCE
    assert source.formats == ["preference", "csv", "parquet"]


def test_chosen_and_rejected_follow_the_outcome_ties_and_both_bad_left_out(agent, build, decide):
    context = [{"role": "user", "content": "Earlier"}, {"role": "assistant", "content": "Hi"}]
    a_wins = ComparisonFactory(
        agent=agent, input="Q-a", answer_a="good A", answer_b="bad B", context=context,
        version_a="v7", version_b="v8", intent="refund",
    )  # fmt: skip
    b_wins = ComparisonFactory(agent=agent, input="Q-b", answer_a="bad A", answer_b="good B")
    tie = ComparisonFactory(agent=agent)
    both_bad = ComparisonFactory(agent=agent)
    ComparisonFactory(agent=agent)  # still pending
    decide({a_wins.pk: "a", b_wins.pk: "b", tie.pk: "tie", both_bad.pk: "both_bad"})

    batch = build(agent, "preference", dataset="comparisons")

    rows = lines(batch)
    assert [r["comparison_id"] for r in rows] == [a_wins.pk, b_wins.pk]
    first, second = rows
    assert (first["prompt"], first["chosen"], first["rejected"]) == ("Q-a", "good A", "bad B")
    assert (second["prompt"], second["chosen"], second["rejected"]) == ("Q-b", "good B", "bad A")
    assert first["prompt_messages"] == [*context, {"role": "user", "content": "Q-a"}]
    assert (first["winner"], first["chosen_version"], first["rejected_version"]) == (
        "a",
        "v7",
        "v8",
    )
    assert (second["winner"], second["chosen_version"], second["rejected_version"]) == (
        "b",
        "v2",
        "v1",
    )
    assert first["kind"] == "versions" and first["intent"] == "refund"
    assert first["domain"] == "support" and second["intent"] is None
    a_wins.refresh_from_db()
    assert first["decided_at"] == a_wins.decided_at.isoformat().replace("+00:00", "Z")
    # The pairs' preference line shape, then the comparison's columns.
    assert list(first) == list(exports.COLUMNS)
    assert first["scores"] == {}
    assert batch.counts == {"rows": 2, "by_winner": {"a": 1, "b": 1}}
    assert batch.manifest["row_order"] == "comparison_id"
    assert batch.manifest["dataset"] == "comparisons"
    assert batch.manifest["data_cutoff_time"] == batch.created_at.isoformat()
    assert batch.file.name.endswith(".jsonl")


def test_csv_and_parquet_hold_the_same_columns(agent, build):
    decided(agent, "a", answer_a="=SUM(A1)", answer_b="plain", version_b="")
    decided(agent, "b", answer_a="lost", answer_b="won", intent="billing")

    csv_batch = build(agent, "csv", dataset="comparisons")
    parquet_batch = build(agent, "parquet", dataset="comparisons")

    frame = pd.read_csv(csv_batch.file.path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(exports.COLUMNS)
    assert frame["chosen"].tolist() == ["'=SUM(A1)", "won"]
    assert frame["rejected"].tolist() == ["plain", "lost"]
    assert frame["winner"].tolist() == ["a", "b"]
    assert frame["rejected_version"].tolist() == ["", "v1"]
    typed = pd.read_parquet(parquet_batch.file.path)
    assert list(typed.columns) == list(exports.COLUMNS)
    assert typed["chosen"].tolist() == ["=SUM(A1)", "won"]
    assert typed["rejected_version"].isna().tolist() == [True, False]
    assert str(typed["decided_at"].dtype) == "datetime64[us, UTC]"
    assert typed["intent"].isna().tolist() == [True, False]
    assert json.loads(typed["prompt_messages"][0])[-1]["role"] == "user"


def test_a_comparison_decided_after_the_request_is_not_in_the_batch(agent, ml, decide):
    early = decided(agent, "a", decided_at=timezone.now() - timedelta(minutes=5))
    late = ComparisonFactory(agent=agent)
    batch = services.batch_request(
        agent=agent, format="preference", dataset="comparisons", actor=ml, enqueue=False
    )
    assert batch.cutoff_id == late.pk
    assert batch.counts["estimated_rows"] == 1
    decide({late.pk: "b"})  # decided after the request: the batch does not change
    after = decided(agent, "a")  # created after the request too

    services.batch_build(batch_id=batch.pk)

    batch.refresh_from_db()
    assert batch.status == ExportBatch.Status.READY, batch.failure_reason
    assert [r["comparison_id"] for r in lines(batch)] == [early.pk]
    # A new request sees both; it is not the earlier batch.
    again = services.batch_request(
        agent=agent,
        format="preference",
        dataset="comparisons",
        actor=ml,
        enqueue=False,
        reuse_existing=True,
    )
    assert again.pk != batch.pk and again.counts["estimated_rows"] == 3
    assert after.pk == again.cutoff_id


def test_an_identical_request_is_answered_with_the_existing_batch(agent, ml):
    decided(agent, "a", decided_at=timezone.now() - timedelta(minutes=1))
    first = services.batch_request(
        agent=agent, format="csv", dataset="comparisons", actor=ml, enqueue=False
    )
    with pytest.raises(services.BatchExists) as exc:
        services.batch_request(
            agent=agent,
            format="csv",
            dataset="comparisons",
            actor=ml,
            enqueue=False,
            reuse_existing=True,
        )
    assert exc.value.batch.pk == first.pk


def test_the_filters_narrow_the_batch(agent, build):
    day = timezone.now() - timedelta(days=3)
    old = decided(agent, "a", decided_at=day, version_a="v1", version_b="v2")
    other_side = decided(agent, "b", version_a="v3", version_b="v1", intent="refund")
    regression = decided(
        agent, "a", kind="regression", version_a="v4", version_b="reference", domain="billing"
    )

    def ids(**filters):
        batch = build(agent, "csv", dataset="comparisons", filters=filters)
        frame = pd.read_csv(batch.file.path, dtype=str, keep_default_na=False)
        return [int(v) for v in frame["comparison_id"]]

    assert ids(agent_versions=["v1"]) == [old.pk, other_side.pk]  # either side
    assert ids(kinds=["regression"]) == [regression.pk]
    assert ids(intents=["refund"]) == [other_side.pk]
    assert ids(domains=["billing"]) == [regression.pk]
    assert ids(date_to=day.date().isoformat()) == [old.pk]
    assert ids(date_from=(day + timedelta(days=1)).date().isoformat()) == [
        other_side.pk,
        regression.pk,
    ]
    clean = services.filters_clean(dataset="comparisons", format="csv", filters={})
    assert clean == {
        "date_from": None,
        "date_to": None,
        "kinds": ["regression", "versions"],
        "agent_versions": [],
        "intents": [],
        "domains": [],
    }


def test_bad_filters_give_an_error_per_field():
    with pytest.raises(services.InvalidRequest) as exc:
        services.filters_clean(
            dataset="comparisons",
            format="preference",
            filters={
                "date_from": "yesterday",
                "kinds": ["nope"],
                "agent_versions": "v1",
                "intents": [""],
                "sources": ["correct"],
            },
        )
    errors = exc.value.errors
    assert set(errors) == {"date_from", "kinds", "agent_versions", "intents", "filters"}
    assert "unknown value(s) nope" in errors["kinds"]
    assert errors["filters"] == "unknown filter(s) sources"


@pytest.mark.parametrize("fmt", ["jsonl", "openai"])
def test_formats_other_than_preference_csv_parquet_are_refused(fmt, agent, ml):
    decided(agent, "a")
    with pytest.raises(services.InvalidRequest) as exc:
        services.batch_request(
            agent=agent, format=fmt, dataset="comparisons", actor=ml, enqueue=False
        )
    assert exc.value.errors == {"format": "must be one of preference, csv, parquet"}


def test_nothing_decided_is_refused_with_the_reason(agent, ml):
    ComparisonFactory(agent=agent)
    decided(agent, "tie")
    with pytest.raises(services.InvalidRequest) as exc:
        services.batch_request(
            agent=agent,
            format="csv",
            dataset="comparisons",
            actor=ml,
            enqueue=False,
            refuse_empty=True,
        )
    assert "no decided comparisons" in exc.value.errors["selection"]


def test_the_command_exports_comparisons(agent, tmp_path):
    kept = decided(agent, "b", kind="regression")
    decided(agent, "a")
    out = io.StringIO()
    target = tmp_path / "cmp.jsonl"

    call_command(
        "export_batch", "--agent", "support-bot", "--dataset", "comparisons",
        "--format", "preference", "--kind", "regression", "--out", str(target), stdout=out,
    )  # fmt: skip

    assert "rows 1" in out.getvalue()
    (row,) = [json.loads(line) for line in target.read_text().splitlines()]
    assert (row["comparison_id"], row["chosen"]) == (kept.pk, kept.answer_b)


def test_the_page_queues_a_comparisons_export(ml_client, agent):
    decided(agent, "a", version_b="v9")

    page = ml_client.get("/exports/")
    assert 'id="comparisons_form"' in page.content.decode()
    response = ml_client.post(
        "/exports/build/",
        {
            "dataset": "comparisons",
            "agent": "support-bot",
            "format": "preference",
            "agent_versions": "v9, v10",
        },
    )

    assert response.status_code == 302
    batch = ExportBatch.objects.get()
    assert (batch.dataset, batch.format, batch.filters["agent_versions"]) == (
        "comparisons",
        "preference",
        ["v10", "v9"],
    )


def test_the_page_shows_the_services_errors_on_the_comparisons_form(ml_client, agent):
    decided(agent, "a")
    response = ml_client.post(
        "/exports/build/",
        {"dataset": "comparisons", "agent": "support-bot", "format": "jsonl"},
    )
    assert response.status_code == 400
    assert "comparisons_form" in response.content.decode()


def test_the_api_requests_a_comparisons_batch(agent, ml, api_client):
    decided(agent, "a", intent="refund")

    response = api_client(ml).post(
        "/api/v1/exports",
        {
            "agent": "support-bot",
            "dataset": "comparisons",
            "format": "parquet",
            "filters": {"intents": ["refund"], "kinds": ["versions"]},
        },
    )
    refused = api_client(ml).post(
        "/api/v1/exports",
        {"agent": "support-bot", "dataset": "comparisons", "format": "openai"},
    )

    assert response.status_code == 202, response.content
    batch = ExportBatch.objects.get(pk=response.json()["id"])
    assert (batch.dataset, batch.format, batch.filters["intents"]) == (
        "comparisons",
        "parquet",
        ["refund"],
    )
    assert refused.status_code == 400
    assert "format" in refused.json()["errors"]
