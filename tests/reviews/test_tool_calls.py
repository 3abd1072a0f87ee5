"""Whole conversations with tool calls on the review screen (issue 13): earlier turns, then
the user's question, the tool calls of this turn with their arguments and results
(collapsible, escaped, JSON pretty-printed), then the answer."""

import pytest

from reviews import selectors, services
from tests.factories import AgentFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
CONTEXT = [
    {"role": "user", "content": "Hi"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c0", "name": "greet", "arguments": "{}"}],
    },
    {"role": "tool", "tool_call_id": "c0", "content": "ok"},
    {"role": "assistant", "content": "Hello!"},
]
ARGUMENTS = '{"order":42,"note":"<script>alert(1)</script>"}'
STEPS = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": ARGUMENTS}],
    },
    {
        "role": "tool",
        "tool_call_id": "call_1",
        "name": "lookup_order",
        "content": '{"status":"sent","eta":"Friday"}',
    },
]


def test_the_transcript_pretty_prints_tool_arguments_and_json_results():
    turns = selectors.transcript(STEPS)
    assert turns[0]["tool_calls"] == [
        {
            "id": "call_1",
            "name": "lookup_order",
            "arguments": '{\n  "order": 42,\n  "note": "<script>alert(1)</script>"\n}',
        }
    ]
    assert turns[1] == {
        "role": "tool",
        "content": '{\n  "status": "sent",\n  "eta": "Friday"\n}',
        "tool_call_id": "call_1",
        "name": "lookup_order",
    }


def test_the_transcript_keeps_text_that_is_not_json_and_odd_rows():
    turns = selectors.transcript(
        [{"role": "tool", "content": "{not json"}, "plain", {"role": "x", "content": None}]
    )
    assert [t["content"] for t in turns] == ["{not json", "plain", ""]
    assert [t["role"] for t in turns] == ["tool", "other", "other"]


def test_the_review_screen_shows_the_turns_tool_calls_and_results_escaped(client, reviewer):
    agent = AgentFactory(slug="support-bot", domain="support")
    ReviewItemFactory(
        interaction__agent=agent,
        interaction__input="Where is order 42?",
        interaction__context=CONTEXT,
        interaction__steps=STEPS,
    )
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)

    html = client.get(f"/review/{item.pk}/").content.decode()

    assert XSS not in html and XSS_ESCAPED in html
    assert "Tool calls before the answer" in html and "(2 messages)" in html
    assert "Called <code>lookup_order</code>" in html
    assert "&quot;status&quot;: &quot;sent&quot;" in html  # pretty-printed, escaped
    question, call = html.index("Where is order 42?"), html.index("lookup_order")
    assert question < call < html.index('class="answer"')
    assert "Called <code>greet</code>" in html  # a tool call of an earlier turn


def test_no_steps_no_tool_section(client, reviewer):
    ReviewItemFactory(interaction__agent=AgentFactory(slug="support-bot", domain="support"))
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)
    assert "Tool calls before the answer" not in client.get(f"/review/{item.pk}/").content.decode()


def test_a_long_conversation_shows_its_latest_turns_and_says_what_it_left_out(
    client, reviewer, settings
):
    turns = [{"role": "user", "content": f"turn {n} " + "x" * 19_990} for n in range(200)]
    ReviewItemFactory(
        interaction__agent=AgentFactory(slug="support-bot", domain="support"),
        interaction__context=turns,
    )
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)

    html = client.get(f"/review/{item.pk}/").content.decode()

    assert "(200 turns" in html
    assert "turn 199 " in html and "turn 197 " in html and "turn 196 " not in html
    assert "197 earlier turns (" in html and "not shown here" in html
