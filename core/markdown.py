"""Markdown from agents (answers, guidelines) as sanitised HTML, bounded by input size.

Agent text is untrusted. Two layers keep it inert: markdown-it-py ("commonmark" preset) runs
with raw HTML off, so any tag in the input comes out as escaped text and links with a
`javascript:` / `data:` / `vbscript:` / `file:` scheme stay unlinked; then nh3 (ammonia)
keeps only an allow-list of tags and attributes, only http / https / mailto links (relative
ones are dropped, so an answer cannot point a reviewer at one of our own URLs) and gives
every link `rel="noopener noreferrer nofollow"`. Images are not rendered (an image is a
request the agent chooses to make from the reviewer's browser): `![alt](url)` shows as text.

Cost is bounded by the input, not its shape: markdown-it-py is linear on the adversarial
shapes we know (see bench/markdown.py), nesting deeper than MAX_NESTING blocks falls back to
the escaped plain text (markdown-it would otherwise silently drop whatever lies past its
nesting limit), and so does text longer than MAX_CHARS (the ingest limit).
"""

from __future__ import annotations

from html import escape

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

# The ingest limit for one text field (settings.INGEST_MAX_TEXT_CHARS defaults to it);
# guidelines are edited in the console under the same bound.
MAX_CHARS = 20_000
# What costs markdown-it time is markup, not prose: ~10 µs per bracket, delimiter or pipe,
# ~50 per list line or autolink, against well under one per plain character
# (bench/markdown.py). Past either budget the text is shown plain. The review screen renders
# two texts (the answer and the agent's guidelines), so each gets a third of the 100 ms
# page budget: at 3,000 markup characters / 800 lines the worst shapes took 50-100 ms each on
# a 2-core machine; at 1,000 / 250 they take under ~35 ms.
MAX_MARKUP = 1_000
MAX_LINES = 250
_MARKUP = "*_`[]()<>!&|\\#-+=~:\n"
# Block nesting (each blockquote is one level, each list two: the list and its item).
MAX_NESTING = 20
# markdown-it stops parsing (and drops the rest of the text) at its own limit; keep ours
# below it so reaching our limit is seen in the tokens before anything is lost.
_PARSER_NESTING = MAX_NESTING + 2
# Headings start below the page's own (h1 the page, h2 the card).
_HEADING_SHIFT = 2

_md = MarkdownIt(
    "commonmark",
    {"html": False, "linkify": False, "typographer": False, "maxNesting": _PARSER_NESTING},
).enable("table")
_md.disable("image")

_cleaner = nh3.Cleaner(
    tags={
        "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
        "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
    },
    clean_content_tags=set(),
    attributes={"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}},
    filter_style_properties={"text-align"},
    url_schemes={"http", "https", "mailto"},
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)  # fmt: skip


def render_markdown(text: str | None) -> str:
    """Sanitised HTML for `text`; escaped plain text when it is too long or nested too deep."""
    if not text:
        return ""
    if too_costly(text):
        return plain_text(text)
    env: dict = {}
    tokens = _md.parse(text, env)
    if _too_deep(tokens):
        return plain_text(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + _HEADING_SHIFT, 6)}"
    return _cleaner.clean(_md.renderer.render(tokens, _md.options, env))


def plain_text(text: str) -> str:
    """The fallback: the text escaped, pre-wrapped by the `.pre` class."""
    return f'<div class="pre">{escape(text, quote=False)}</div>'


def too_costly(text: str) -> bool:
    """Whether `text` is over a budget and shown plain (a cheap scan, ~0.3 ms at 20,000)."""
    return len(text) > MAX_CHARS or text.count("\n") > MAX_LINES or markup_count(text) > MAX_MARKUP


def markup_count(text: str) -> int:
    """How many characters of `text` markdown-it may treat as markup (a cheap upper bound)."""
    return sum(text.count(char) for char in _MARKUP)


def _too_deep(tokens: list[Token]) -> bool:
    return any(token.level >= MAX_NESTING for token in tokens)
