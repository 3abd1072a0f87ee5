"""The KPI dashboard in real Chromium (issue 5): an admin signs in, sees the charts of the demo
data drawn by Chart.js, switches the agent and sees them redrawn (htmx swap, pushed URL),
and recomputes from the button. Saves docs/screenshots/kpis-dashboard.png.

The demo comes in through `seed_demo`: its traffic through the ingest path, its weeks of
decisions through the review services and its KPIs through the recompute, so the verdict and
review-speed charts have data too. With months of days on the axis, the date labels must
stay legible (no two drawn on top of each other).
"""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from demo import seed as demo
from ingest.services import interactions_ingest
from kpis import services as kpi_services
from reviews.models import ReviewItem
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("transactional_db")

CHARTS_DRAWN = """() => {
  const canvases = [...document.querySelectorAll('canvas[data-chart]')];
  return canvases.length > 0 && canvases.every(c => window.Chart && Chart.getChart(c))
    && Object.keys(Chart.instances).length === canvases.length;
}"""


@pytest.fixture
def demo_kpis(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the demo builds export batches
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    demo.demo_seed(interactions=900)
    assert ReviewItem.objects.filter(status="done").exists()


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


# Every drawn x-axis label of every chart, with the box it covers: its width measured with the
# label's own font on the chart's canvas, around the position Chart.js drew it at.
X_LABELS = """() => [...document.querySelectorAll('canvas[data-chart]')].map(canvas => {
  const chart = Chart.getChart(canvas), scale = chart.scales.x, ctx = chart.ctx;
  const labels = scale.getLabelItems().map(item => {
    ctx.save();
    ctx.font = item.font.string;
    const lines = [].concat(item.label);
    const width = Math.max(...lines.map(line => ctx.measureText(String(line)).width));
    ctx.restore();
    return {text: lines.join(" "), x: item.options.translation[0], width: width,
            align: item.options.textAlign, height: item.font.lineHeight * lines.length};
  });
  return {chart: canvas.dataset.chart, width: chart.width, rotation: scale.labelRotation,
          ticks: scale.ticks.length, labels: labels};
})"""


def label_boxes(axis: dict) -> list[tuple[float, float, str]]:
    """(left, right, text) of each drawn label along the axis, left to right."""
    boxes = []
    for label in axis["labels"]:
        x, width = label["x"], label["width"]
        left = {"left": x, "right": x - width}.get(label["align"], x - width / 2)
        boxes.append((left, left + width, label["text"]))
    return sorted(boxes)


@pytest.fixture
def long_history():
    """75 days of one agent's traffic (through the ingest path) and its KPIs."""
    now = timezone.now()
    records = [
        {
            "external_id": f"trend-{day}-{k}",
            "agent": "trend-bot",
            "input": "Where is my order?",
            "output": "It is on its way.",
            "confidence": 0.35 + 0.15 * k,
            "resolved": (day + k) % 3 != 0,
            "sentiment": 0.1 * k,
            "turns": 2 + k,
            "created_at": (now - timedelta(days=day, hours=k + 1)).isoformat(),
        }
        for day in range(75)
        for k in range(4)
    ]
    result = interactions_ingest(records=enumerate(records), source="test")
    assert result.created == len(records)
    kpi_services.kpis_recompute(full=True)
    return UserFactory(username="lead", roles=["admin"])


@pytest.mark.parametrize("days", [90, 365])
def test_it_draws_date_labels_that_do_not_collide_over_months(long_history, login, days):
    page = login("lead", next_url=quote(f"/kpis/?agent=trend-bot&days={days}"))
    page.wait_for_function(CHARTS_DRAWN)
    axes = page.evaluate(X_LABELS)

    assert len(axes) >= 3
    for axis in axes:
        assert axis["ticks"] < days, axis["chart"]  # thinned out, not one label a day
        assert axis["rotation"] == 0, axis["chart"]  # horizontal: no slanted date soup
        boxes = label_boxes(axis)
        assert len(boxes) >= 4, axis["chart"]
        for (_, right, text), (left, _, following) in zip(boxes, boxes[1:], strict=False):
            assert right + 4 <= left, f"{axis['chart']}: {text!r} runs into {following!r}"
        assert boxes[0][0] >= 0 and boxes[-1][1] <= axis["width"], axis["chart"]
        # "3 Nov" ("3 Nov ’25" when the range spans two years), not "2026-11-03"
        assert all(re.fullmatch(r"\d{1,2} [A-Z][a-z]{2}( ’\d\d)?", t) for *_, t in boxes), boxes
