"""An agent's OpenTelemetry trace, as its exporter sends it, ends on a reviewer's screen in
real Chromium (issue 13): the earlier turns, the question, the tool call with its arguments
and result (collapsed until opened), and the answer to judge."""

import json

import pytest
from playwright.sync_api import expect

from ingest.otlp import spans_decode
from ingest.services import traces_ingest
from tests.factories import UserFactory
from tests.ingest.test_otlp import chat, export

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_a_traced_conversation_with_tool_calls_is_reviewed(page, live_server, login, screenshot):
    body = json.dumps(export(chat(**{"coachdesk.domain": "support"}))).encode()
    result = traces_ingest(spans=spans_decode(body, "application/json"))
    assert result.created == 1
    UserFactory(username="rita", roles=["reviewer"], domains=["support"])

    login("rita", next_url="/queue/")
    page.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url("**/review/*/")

    earlier = page.locator("details.transcript-wrap").first
    expect(earlier).to_contain_text("Hi, order 42 please")
    steps = page.locator("details.steps")
    expect(steps).to_contain_text("Tool calls before the answer")
    call = steps.locator("details.tool-call")
    expect(call.locator("pre")).not_to_be_visible()  # collapsed until opened
    call.locator("summary").click()
    expect(call.locator("pre")).to_have_text('{\n  "id": 42\n}')
    result_box = steps.locator("details.tool-result")
    result_box.locator("summary").click()
    expect(result_box.locator("pre")).to_contain_text('"status": "sent"')
    expect(page.locator(".answer")).to_contain_text("Order 42 left our warehouse.")
    screenshot("review-tool-calls", full_page=True)
