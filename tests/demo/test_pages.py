"""Every role's pages on the first run show the demo's data, not empty states. One demo per
module (`seeded_demo`, tests/demo/conftest.py), read only: each test signs in a demo user."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from agents.models import Agent
from kpis.models import KpiSnapshot
from retraining.models import ExportBatch
from reviews.models import Review, ReviewItem

pytestmark = pytest.mark.usefixtures("db", "seeded_demo")


@pytest.fixture
def as_user(client):
    def sign_in(username: str):
        client.force_login(get_user_model().objects.get(username=username))
        return client

    return sign_in


def chart_data(html: str) -> dict:
    """The JSON the dashboard embeds for its charts (`json_script`)."""
    start = html.index('<script id="kpi-chart-data" type="application/json">')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


@pytest.mark.parametrize("slug", ["legal-bot", "support-bot", "product-recommender"])
def test_the_dashboard_charts_each_agents_month(as_user, slug):
    response = as_user("admin").get(reverse("kpis:dashboard"), {"agent": slug, "days": 30})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="kpi-card') >= 4
    charts = {c["id"]: c for c in chart_data(html)["charts"]}
    assert {"rates", "volume"} <= set(charts)
    if slug != "product-recommender":
        verdicts = charts["verdicts"]["datasets"][0]["data"]  # approval rate per day
        assert sum(v is not None for v in verdicts) >= 10
        assert "review_speed" in charts


def test_the_dashboard_shows_the_reviewers_decisions_to_the_ml_engineer(as_user):
    response = as_user("mia").get(reverse("kpis:dashboard"), {"agent": "legal-bot"})

    assert response.status_code == 200
    assert response.context["decisions"].n > 0
    assert b"No reviews in this range" not in response.content


def test_the_agreement_page_compares_the_legal_reviewer_pairs(as_user):
    response = as_user("admin").get(reverse("kpis:agreement"), {"agent": "legal-bot"})

    assert response.status_code == 200
    per_agent = {row["agent"].slug: row["agreement"] for row in response.context["per_agent"]}
    assert per_agent["legal-bot"].pairs >= 10
    pairs = {(row["a"], row["b"]) for row in response.context["per_pair"]}
    assert len(pairs) >= 2
    assert any("lena" in pair for pair in pairs)
    assert b"No four-eyes items with two reviews" not in response.content


@pytest.mark.parametrize("slug", ["support-bot", "legal-bot"])
def test_the_calibration_page_has_decided_items_to_calibrate_on(as_user, slug):
    response = as_user("mia").get(reverse("kpis:calibration"), {"agent": slug})

    assert response.status_code == 200
    assert response.context["result"].decided >= 10
    assert b"Expected calibration error" in response.content


def test_the_exports_page_offers_the_ready_batches_for_download(as_user):
    client = as_user("mia")
    response = client.get(reverse("retraining:exports"))

    assert response.status_code == 200
    html = response.content.decode()
    batches = ExportBatch.objects.filter(status="ready")
    assert batches.exists()
    for batch in batches:
        assert f'id="batch-{batch.pk}"' in html
        assert reverse("retraining:download", args=[batch.pk]) in html
    first = batches.order_by("pk").first()
    assert f"trained {first.trained_agent_version}" in html
    download = client.get(reverse("retraining:download", args=[first.pk]))
    assert download.status_code == 200
    assert len(b"".join(download.streaming_content).splitlines()) == first.row_count


def test_the_console_lists_the_open_queue_for_the_lead(as_user):
    response = as_user("admin").get(reverse("console:browser"))

    assert response.status_code == 200
    assert len(response.context["page"].object_list) > 0


def test_the_workload_page_shows_the_reviewers_past_work(as_user):
    response = as_user("admin").get(reverse("console:workload"))

    assert response.status_code == 200
    html = response.content.decode()
    for username in ("lena", "omar", "priya", "sam", "jonas"):
        assert username in html


def test_the_adjudication_page_lists_what_waits_for_the_lead(as_user):
    waiting = ReviewItem.objects.filter(status="disputed")
    response = as_user("admin").get(reverse("console:adjudication_list"))

    assert response.status_code == 200
    for item in waiting:
        assert reverse("console:adjudication", args=[item.pk]) in response.content.decode()
    assert Review.objects.filter(is_adjudication=True).exists() or waiting.exists()


@pytest.mark.parametrize("username", ["lena", "omar", "sam", "kai"])
def test_every_reviewer_finds_items_in_their_queue(as_user, username):
    response = as_user(username).get(reverse("reviews:queue"))

    assert response.status_code == 200
    assert response.context["summary"]["total"] > 0


def test_a_reviewer_can_start_on_the_backlog_right_away(as_user):
    client = as_user("lena")

    response = client.post(reverse("reviews:queue_claim"), follow=True)

    assert response.status_code == 200
    item = ReviewItem.objects.get(status="claimed", claimed_by__username="lena")
    assert item.domain == "legal"
    assert response.redirect_chain[-1][0] == reverse("reviews:review", args=[item.pk])


def test_the_kpis_cover_every_agent():
    for agent in Agent.objects.all():
        assert KpiSnapshot.objects.filter(agent=agent, agent_version="").count() >= 20


def test_the_dashboard_shows_the_loop_on_first_run(as_user):
    """The support bot's regression run and its pairwise history (issue 15), computed from
    the rows the demo made through the services."""
    from evals.models import Comparison, RegressionAnswer, RegressionRun

    run = RegressionRun.objects.get(agent__slug="support-bot")
    outcomes = set(RegressionAnswer.objects.filter(run=run).values_list("outcome", flat=True))
    assert "pending" not in outcomes and "fixed" in outcomes
    decided = Comparison.objects.filter(kind="versions", status="done").count()
    assert decided >= 5
    assert Comparison.objects.filter(kind="versions", status="pending").exists()

    response = as_user("mia").get(reverse("kpis:dashboard"), {"agent": "support-bot", "days": 30})

    html = response.content.decode()
    assert f"{run.agent_version} fixes" in html
    assert "of what reviewers corrected in" in html


def test_the_support_reviews_carry_rubric_scores(as_user):
    from reviews.models import Score

    scored = Score.objects.filter(review__item__agent__slug="support-bot")
    assert scored.values("review").distinct().count() >= 20
    assert set(scored.values_list("criterion__key", flat=True)) >= {"accurate", "tone"}
    assert not Score.objects.exclude(review__item__agent__slug="support-bot").exists()


def test_a_support_reviewer_finds_comparisons_waiting(as_user):
    response = as_user("jonas").get(reverse("evals:queue"))

    assert response.status_code == 200
    assert "Start comparing" in response.content.decode()
