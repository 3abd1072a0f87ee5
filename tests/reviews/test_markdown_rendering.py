"""The review screen renders the agent's Markdown (answer and guidelines), sanitised, with the
raw text one click away; the correction editor stays raw text."""

import html as html_lib
import re

import pytest

from reviews import services
from tests.factories import AgentFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db
OUTPUT = (
    "Your **refund** is on its way.\n\n- step one\n- step two\n\n[Track it](https://example.com/t)"
)
GUIDELINES = "## Tone\n\nBe *kind*.\n\n| do | don't |\n|---|---|\n| thank | blame |"
HOSTILE = '<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror="alert(3)">'


def review_page(client, reviewer, *, output=OUTPUT, guidelines=GUIDELINES) -> str:
    agent = AgentFactory(slug="support-bot", domain="support", guidelines=guidelines)
    ReviewItemFactory(interaction__agent=agent, interaction__output=output)
    item = services.item_claim(reviewer=reviewer)
    assert item is not None
    client.force_login(reviewer)
    response = client.get(f"/review/{item.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def answer_of(html: str) -> str:
    start = html.index('class="answer"')
    return html[start : html.index("</section>", start)]


def test_it_renders_the_agents_answer_as_formatted_text(client, reviewer):
    answer = answer_of(review_page(client, reviewer))
    assert "<strong>refund</strong>" in answer
    assert "<li>step one</li>" in answer
    assert '<a href="https://example.com/t" rel="noopener noreferrer nofollow">Track it</a>' in (
        answer
    )


def test_it_keeps_the_raw_answer_one_click_away_without_javascript(client, reviewer):
    answer = answer_of(review_page(client, reviewer))
    raw = re.search(
        r"<details[^>]*>\s*<summary>Raw text</summary>\s*<pre[^>]*>(.*?)</pre>", answer, re.S
    )
    assert raw is not None
    assert html_lib.unescape(raw.group(1)) == OUTPUT


def test_it_keeps_the_correction_editor_raw(client, reviewer):
    html = review_page(client, reviewer)
    editor = re.search(r"<textarea[^>]*data-correction[^>]*>(.*?)</textarea>", html, re.S)
    assert editor is not None
    assert "<strong>" not in editor.group(1)


def test_it_renders_the_guidelines_with_their_raw_text(client, reviewer):
    html = review_page(client, reviewer)
    start = html.index('class="card guidelines"')
    guidelines = html[start : html.index("</details>\n", html.index("Raw text", start)) + 10]
    assert "<em>kind</em>" in guidelines
    assert "<table>" in guidelines and "<td>thank</td>" in guidelines
    assert "<h2>Tone</h2>" not in guidelines  # demoted below the page headings
    assert "## Tone" in guidelines  # the raw text


def test_it_makes_hostile_markdown_inert_in_answer_and_guidelines(client, reviewer):
    html = review_page(client, reviewer, output=HOSTILE, guidelines=HOSTILE)
    main = html[html.index("<main") :]
    assert "<script>alert" not in main
    assert "javascript:" not in main.replace("javascript:alert(2)", "")  # only inside text
    assert 'href="javascript' not in main
    assert "<img" not in main
    assert not re.search(r"<[^>]+\son\w+=", main)
    # The raw text is shown escaped: answer and guidelines, rendered and raw.
    assert main.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


def test_it_keeps_the_pages_csp_strict(client, reviewer):
    review_page(client, reviewer, output=HOSTILE)
    response = client.get("/queue/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
