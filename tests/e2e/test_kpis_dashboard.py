"""The KPI dashboard in real Chromium (issue 5): an admin signs in, sees the charts of the demo
data drawn by Chart.js, switches the agent and sees them redrawn (htmx swap, pushed URL),
and recomputes from the button. Saves docs/screenshots/kpis-dashboard.png.

The demo comes in through `seed_demo`'s ingest path; a share of the queue is then decided
through the review services, so the verdict and review-speed charts have data too.
"""

import pytest
from playwright.sync_api import expect

from demo import seed as demo
from kpis import services as kpi_services
from reviews import services as review_services
from reviews.models import ReviewItem

pytestmark = pytest.mark.usefixtures("transactional_db")

CHARTS_DRAWN = """() => {
  const canvases = [...document.querySelectorAll('canvas[data-chart]')];
  return canvases.length > 0 && canvases.every(c => window.Chart && Chart.getChart(c))
    && Object.keys(Chart.instances).length === canvases.length;
}"""


@pytest.fixture
def demo_kpis():
    demo.demo_seed(interactions=900)
    verdicts = ["approve", "approve", "approve", "correct", "reject"]
    for username in ("sam", "lena"):
        from django.contrib.auth import get_user_model

        reviewer = get_user_model().objects.get(username=username)
        for i in range(25):
            item = review_services.item_claim(reviewer=reviewer)
            if item is None:
                break
            verdict = verdicts[i % len(verdicts)]
            decision = review_services.decision_validate(
                item=item,
                verdict=verdict,
                corrected_output="A better answer." if verdict == "correct" else "",
            )
            review_services.review_submit(item=item, reviewer=reviewer, decision=decision)
    assert ReviewItem.objects.filter(status="done").exists()
    kpi_services.kpis_recompute(full=True)


def chart_data(page, chart: str):
    return page.evaluate(
        "(id) => Chart.getChart(document.querySelector(`canvas[data-chart=${id}]`))"
        ".data.datasets.map(d => d.data)",
        chart,
    )


def test_it_draws_the_charts_and_redraws_them_for_another_agent(demo_kpis, login, screenshot):
    page = login("admin", password=demo.DEMO_PASSWORD, next_url="/kpis/?days=30")
    expect(page.locator("h1")).to_have_text("KPIs")
    expect(page.locator("select[name=agent]")).to_have_value("legal-bot")
    page.wait_for_function(CHARTS_DRAWN)
    legal_volume = chart_data(page, "volume")
    assert page.locator(".kpi-card").count() >= 6
    assert page.locator('canvas[data-chart="recommendations"]').count() == 0

    page.select_option("select[name=agent]", "support-bot")
    page.wait_for_url("**/kpis/?*agent=support-bot*")
    expect(page.locator(".lead").first).to_contain_text("support-bot")
    page.wait_for_function(CHARTS_DRAWN)
    assert chart_data(page, "volume") != legal_volume
    # every series differs by point shape and dash, not only colour
    styles = page.evaluate(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=rates]'))"
        ".data.datasets.map(d => [d.pointStyle, JSON.stringify(d.borderDash)])"
    )
    assert len({s[0] for s in styles}) == len(styles)
    assert len({s[1] for s in styles}) == len(styles)
    page.wait_for_timeout(300)  # let the layout settle for the screenshot
    screenshot("kpis-dashboard", full_page=True)

    page.select_option("select[name=agent]", "product-recommender")
    page.wait_for_url("**/kpis/?*agent=product-recommender*")
    page.wait_for_function(CHARTS_DRAWN)
    expect(page.locator('canvas[data-chart="recommendations"]')).to_be_visible()
    expect(page.locator("#skipped-title + ol li").first).to_contain_text("P-")

    page.go_back()  # the pushed URL restores the previous agent
    expect(page.locator("select[name=agent]")).to_have_value("support-bot")


def test_it_recomputes_from_the_button_and_shows_it_done(demo_kpis, login):
    page = login("admin", password=demo.DEMO_PASSWORD, next_url="/kpis/")
    page.wait_for_function(CHARTS_DRAWN)
    page.click("text=Recompute now")
    expect(page.locator("#recompute-status")).to_contain_text("Recomputed", timeout=20_000)
    page.wait_for_function(CHARTS_DRAWN)  # the body reloaded and the charts were redrawn
