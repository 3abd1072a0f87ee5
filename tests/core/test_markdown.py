"""core.markdown: agent Markdown becomes sanitised HTML, bounded by input size."""

import re

import pytest

from core.markdown import MAX_CHARS, MAX_LINES, MAX_MARKUP, MAX_NESTING, render_markdown

XSS_INPUTS = [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(2)">',
    "[click](javascript:alert(3))",
    "[click](JaVaScRiPt:alert(3))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCg0KTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(5))",
    "![x](javascript:alert(6))",
    '<a href="https://example.com" onclick="alert(7)">x</a>',
    "<div onmouseover=alert(8)>hover</div>",
    "<iframe src=https://evil.example></iframe>",
    '[x](https://example.com "a\\" onmouseover=\\"alert(9)")',
    '<https://example.com/" onclick="alert(10)>',
    "`<script>alert(11)</script>`",
    "```html\n<script>alert(12)</script>\n```",
    "<style>body{display:none}</style>",
    "[x]: javascript:alert(13)\n\n[go][x]",
]


def tags(html: str) -> set[str]:
    return {name.lower() for name in re.findall(r"<\s*([a-zA-Z][a-zA-Z0-9]*)", html)}


@pytest.mark.parametrize("text", XSS_INPUTS)
def test_it_makes_hostile_input_inert(text):
    html = render_markdown(text)
    lowered = html.lower()
    assert tags(html) <= {"p", "a", "code", "pre", "em", "strong"}
    assert "<script" not in lowered and "<img" not in lowered and "<iframe" not in lowered
    assert "<style" not in lowered and "<div" not in lowered
    assert not re.search(r"<[^>]+\son\w+\s*=", re.sub(r'"[^"]*"', '""', lowered))
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith(("http://", "https://", "mailto:")), href


def test_it_keeps_no_event_handler_attribute_anywhere():
    html = render_markdown("\n\n".join(XSS_INPUTS))
    for tag in re.findall(r"<[^>]+>", html):
        names = re.sub(r'"[^"]*"', '""', tag)  # a quoted value is text, not an attribute
        assert not re.search(r"\son\w+\s*=", names), tag
        assert "style=" not in tag or tag.startswith(("<th", "<td")), tag


def test_it_shows_raw_html_as_text():
    html = render_markdown("<b>bold?</b>")
    assert "<b>" not in html
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html


def test_it_renders_emphasis_lists_and_code():
    html = render_markdown("*soft* and **loud**\n\n- one\n- two\n\n1. first\n\n`x = 1`\n")
    assert "<em>soft</em>" in html and "<strong>loud</strong>" in html
    assert "<ul>" in html and "<li>one</li>" in html
    assert "<ol>" in html and "<li>first</li>" in html
    assert "<code>x = 1</code>" in html


def test_it_renders_fenced_code_escaped():
    html = render_markdown("```python\nif a < b:\n    pass\n```")
    assert "<pre><code" in html
    assert "if a &lt; b:" in html


def test_it_renders_tables():
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |\n")
    assert "<table>" in html and "<th>a</th>" in html and "<td>1</td>" in html


def test_it_gives_links_a_safe_rel_and_keeps_allowed_schemes():
    html = render_markdown("[docs](https://example.com/a?b=1) and [mail](mailto:help@example.com)")
    assert 'href="https://example.com/a?b=1"' in html
    assert 'href="mailto:help@example.com"' in html
    assert html.count('rel="noopener noreferrer nofollow"') == 2


def test_it_drops_links_to_other_schemes_and_relative_paths_but_keeps_the_text():
    html = render_markdown("[a](ftp://example.com/x) [b](/admin/) [c](file:///etc/passwd)")
    assert "href" not in html
    assert "a" in html and "b" in html and "c" in html


def test_it_does_not_linkify_bare_urls():
    assert "<a" not in render_markdown("see https://example.com now")


def test_it_shows_images_as_text_not_as_images():
    html = render_markdown("![tracking pixel](https://evil.example/p.png)")
    assert "<img" not in html
    assert "tracking pixel" in html


def test_it_demotes_headings_below_the_page_headings():
    html = render_markdown("# Title\n\n## Part")
    assert "<h1" not in html and "<h2" not in html
    assert "<h3>Title</h3>" in html and "<h4>Part</h4>" in html


def test_it_renders_nothing_for_empty_input():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""


# --- bounded by input size ------------------------------------------------------------------


def test_it_falls_back_to_escaped_text_when_nesting_is_too_deep():
    text = "> " * (MAX_NESTING + 5) + "<b>deep</b> *x*"
    html = render_markdown(text)
    assert "<blockquote>" not in html
    assert "&lt;b&gt;deep&lt;/b&gt;" in html
    assert "*x*" in html  # nothing dropped, nothing interpreted


def test_it_falls_back_for_deeply_nested_lists():
    text = "".join("  " * depth + "- item\n" for depth in range(200))
    html = render_markdown(text)
    assert html.count("<ul>") == 0
    assert html.count("item") == 200


def test_it_renders_moderate_nesting():
    html = render_markdown("> > - a\n>   - b")
    assert html.count("<blockquote>") == 2


def test_it_falls_back_to_escaped_text_over_the_size_cap():
    text = "*a* " * (MAX_CHARS // 4 + 1)
    html = render_markdown(text)
    assert "<em>" not in html
    assert html.count("*a*") == MAX_CHARS // 4 + 1


def test_it_falls_back_to_escaped_text_over_the_markup_budget():
    text = "[" * (MAX_MARKUP + 1)
    assert render_markdown(text) == f'<div class="pre">{text}</div>'
    assert "<em>" in render_markdown("*a* " * (MAX_MARKUP // 2 - 1))


def test_it_falls_back_to_escaped_text_over_the_line_budget():
    html = render_markdown("- x\n" * (MAX_LINES + 1))
    assert "<li>" not in html
    assert html.count("- x") == MAX_LINES + 1


ADVERSARIAL = {
    "nested_blockquotes": "> " * 10_000,
    "nested_lists": "".join("  " * d + "- x\n" for d in range(150)),
    "nested_brackets": "[" * 20_000,
    "emphasis_markers": "*a_" * 6_666,
    "unclosed_emphasis": "**" * 10_000,
    "backticks": "`" * 20_000,
    "huge_table": "|" + "a|" * 200 + "\n|" + "-|" * 200 + "\n" + ("|" + "b|" * 200 + "\n") * 40,
    "many_links": "[a](https://e.co/) " * 1_000,
    "many_reference_links": "".join(f"[l{i}]: https://e.co/{i}\n" for i in range(800))
    + "[l1] " * 500,
    "html_soup": "<a href=x onclick=y>" * 1_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_it_bounds_the_output_of_adversarial_input(name):
    text = ADVERSARIAL[name][:MAX_CHARS]
    html = render_markdown(text)
    # Output grows linearly with the input (escaping and tags), never with nesting squared.
    assert len(html) <= 12 * len(text) + 1_000
    depth = max_depth(html)
    assert depth <= MAX_NESTING + 3  # block nesting plus an inline element or two


def max_depth(html: str) -> int:
    depth = deepest = 0
    for closing, name in re.findall(r"<(/?)([a-z][a-z0-9]*)", html):
        if name in {"br", "hr"}:
            continue
        depth += -1 if closing else 1
        deepest = max(deepest, depth)
    return deepest


def test_it_shows_an_answer_with_a_thousand_markup_characters_plain():
    # The review screen renders two texts (answer and guidelines): each gets a third of the
    # page's 100 ms, so the budget is 1,000 markup characters and 250 lines per text.
    assert "<em>" in render_markdown("*a* " * 499)  # 998 markup characters
    assert "<em>" not in render_markdown("*a* " * 501)
    assert "<li>" in render_markdown("- x\n" * 249)
    assert "<li>" not in render_markdown("- x\n" * 251)
