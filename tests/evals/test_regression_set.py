"""The regression set (evals.regression): which decided items are cases, the filters, the
pages, and the command that writes it as JSONL."""

import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from evals import regression
from tests import factories
from tests.evals.conftest import (
    decide,
    held_out_text,
    hold,
    train_text,
    trained_text,
)

pytestmark = pytest.mark.django_db


def case_ids(agent, **filters):
    return [c.id for c in regression.cases_iter(agent, regression.filters_clean(filters))]


def test_it_holds_held_out_corrections_and_rejections_only(agent):
    corrected = decide(agent, held_out_text())
    rejected = decide(agent, held_out_text(), verdict="reject")
    decide(agent, held_out_text(), verdict="approve")
    decide(agent, train_text())  # corrected, but its input is not held out
    decide(agent, held_out_text(), verdict="escalate")  # not a final decision the set takes
    decide(factories.AgentFactory(slug="other-bot"), held_out_text())

    assert sorted(case_ids(agent)) == sorted([corrected.pk, rejected.pk])


def test_it_leaves_out_what_a_batch_trained_on(agent):
    trained = decide(agent, trained_text())
    hold(trained, share=0.05)  # bucket 500-999: train at 0.05
    in_validation = decide(agent, held_out_text())
    hold(in_validation, share=0.05)  # bucket < 500: validation at 0.05 too
    failed = decide(agent, trained_text())
    hold(failed, share=0.05, failed=True)  # a failed batch holds nothing
    same_share = decide(agent, trained_text())
    hold(same_share, share=0.1)

    assert sorted(case_ids(agent)) == sorted([in_validation.pk, failed.pk, same_share.pk])


def test_it_describes_each_case(agent):
    category = factories.ErrorCategoryFactory(slug="factual-error")
    corrected = decide(
        agent, held_out_text(), old="Old.", corrected="New.", category=category, version="v9"
    )
    rejected = decide(agent, held_out_text(), verdict="reject", old="Bad.")

    cases = {c.id: c for c in regression.cases_iter(agent, regression.SetFilters())}

    fix, rej = cases[corrected.pk], cases[rejected.pk]
    assert (fix.old_answer, fix.reference, fix.error_category) == ("Old.", "New.", "factual-error")
    assert (fix.verdict, fix.agent_version, fix.intent, fix.domain) == (
        "correct",
        "v9",
        "returns",
        "support",
    )
    assert fix.external_id == corrected.interaction.external_id
    assert (rej.old_answer, rej.reference, rej.verdict) == ("Bad.", "", "reject")


def test_it_takes_the_adjudicated_correction(agent):
    item = decide(agent, held_out_text(), corrected="First try.")
    factories.ReviewFactory(
        item=item, verdict="correct", corrected_output="Lead's word.", adjudication=True
    )

    (case,) = regression.cases_iter(agent, regression.SetFilters())

    assert case.reference == "Lead's word."


def test_it_filters(agent):
    category = factories.ErrorCategoryFactory(slug="tone")
    returns = decide(agent, held_out_text(), intent="returns", domain="support")
    billing = decide(agent, held_out_text(), intent="invoice", domain="billing", version="v2")
    toned = decide(agent, held_out_text(), intent="returns", category=category)
    late = decide(agent, held_out_text(), decided_at=datetime(2026, 12, 2, 23, 59, tzinfo=UTC))

    assert sorted(case_ids(agent, intent="returns")) == sorted([returns.pk, toned.pk, late.pk])
    assert case_ids(agent, domain="billing") == [billing.pk]
    assert case_ids(agent, agent_version="v2") == [billing.pk]
    assert case_ids(agent, error_category="tone") == [toned.pk]
    assert case_ids(agent, date_from="2026-12-02") == [late.pk]
    assert late.pk not in case_ids(agent, date_to="2026-12-01")
    assert case_ids(agent, date_to="2026-12-02", intent="invoice") == [billing.pk]


def test_it_refuses_bad_filters(agent):
    with pytest.raises(regression.InvalidRequest) as bad:
        regression.filters_clean(
            {"date_from": "yesterday", "colour": "red", "error_category": "no-such-category"}
        )

    assert set(bad.value.errors) == {"date_from", "colour", "error_category"}


def test_it_pages_through_the_set_with_a_cursor(agent):
    same_time = [decide(agent, held_out_text()).pk for _ in range(5)]  # ties on decided_at
    for _ in range(10):
        decide(agent, train_text())  # rows the pages skip over

    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = regression.cases_page(agent, regression.SetFilters(), cursor=cursor, limit=2)
        seen += [c.id for c in page]
        pages += 1
        if cursor is None:
            break

    assert seen == sorted(same_time)
    assert pages == 3


def test_it_refuses_a_cursor_it_did_not_make(agent):
    with pytest.raises(regression.InvalidRequest):
        regression.cases_page(agent, regression.SetFilters(), cursor="not-a-cursor")


def test_it_reads_a_page_in_a_fixed_number_of_queries(agent, django_assert_max_num_queries):
    for _ in range(30):
        decide(agent, held_out_text())

    with django_assert_max_num_queries(1):
        page, _ = regression.cases_page(agent, regression.SetFilters(), limit=100)

    assert len(page) == 30


def test_the_command_writes_the_set_as_jsonl(agent, tmp_path):
    kept = decide(agent, held_out_text(), intent="returns")
    decide(agent, held_out_text(), intent="invoice")
    out = tmp_path / "set.jsonl"

    call_command("regression_set", "--agent", "support-bot", "--intent", "returns",
                 "--output", str(out))  # fmt: skip

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [kept.pk]
    assert lines[0]["reference"] == "The corrected answer."
    assert lines[0]["input"] == kept.interaction.input


def test_the_command_refuses_an_unknown_agent(db, tmp_path):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("regression_set", "--agent", "nobody", "--output", str(tmp_path / "x"))
