"""No template runs inline JavaScript: the Content-Security-Policy (`script-src 'self'`)
blocks inline event handlers and inline scripts, so they would silently do nothing (issue
17: the exports page's agent picker). Scripts are static files loaded with `src`."""

import re
from pathlib import Path

from django.conf import settings

TEMPLATES = Path(settings.BASE_DIR) / "templates"
# An attribute named on… (onclick=, onchange = …) inside a tag.
HANDLER = re.compile(r"<[a-zA-Z][^>]*?\s(on[a-z]+)\s*=", re.DOTALL)
SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
# Data blocks are not run (json_script writes them): only code needs a src.
DATA_TYPES = re.compile(r"""type\s*=\s*["']application/(ld\+)?json["']""", re.IGNORECASE)


def offenders(text: str) -> list[str]:
    found = [f"inline handler {m.group(1)}=" for m in HANDLER.finditer(text)]
    for m in SCRIPT.finditer(text):
        attributes = m.group(1)
        if not re.search(r"\bsrc\s*=", attributes) and not DATA_TYPES.search(attributes):
            found.append(f"inline <script{attributes}>")
    return found


def test_it_finds_what_it_looks_for():
    assert offenders('<select name="a" onchange="this.form.submit()">') == [
        "inline handler onchange="
    ]
    assert offenders("<button\n  class='x' onClick = 'go()'>".lower()) == [
        "inline handler onclick="
    ]
    assert offenders("<script>alert(1)</script>") == ["inline <script>"]
    assert offenders('<script src="/static/a.js" defer></script>') == []
    assert offenders('<script id="d" type="application/json">{}</script>') == []
    assert offenders('<a href="/x" data-on="1">online</a> <p>once = twice</p>') == []


def test_it_has_no_template_with_inline_javascript():
    found = {
        str(path.relative_to(TEMPLATES)): problems
        for path in sorted(TEMPLATES.rglob("*.html"))
        if (problems := offenders(path.read_text(encoding="utf-8")))
    }

    assert found == {}
