"""Markdown rendering benchmark (issue 17): the CPU time of core.markdown.render_markdown on
adversarial inputs at the documented input limit (settings.INGEST_MAX_TEXT_CHARS), beside a
raw baseline (html.escape of the same input, what the page did before). Each shape is
measured whole and cut to the markup budget (core.markdown.MAX_MARKUP) then filled with prose,
the costliest text that is still rendered.

    python bench/markdown.py [--n 20000] [--repeat 5]

Target: well under 100 ms of CPU per text whatever the shape. Pure Python, no database. The
last line is one JSON object of the figures: per shape the best of `--repeat` runs in ms.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit_figures, say  # noqa: E402

from core.markdown import MAX_LINES, MAX_MARKUP, markup_count, render_markdown, too_costly  # noqa: E402

PROSE = "Thank you for waiting, the parcel left our warehouse this morning and will arrive soon. "


def shapes(n: int) -> dict[str, str]:
    """Texts of at most `n` characters."""
    row = "|" + "b|" * 50 + "\n"
    texts = {
        "ordinary_answer": (
            "Thanks for asking! Your **refund** is on its way.\n\n- step *one*\n- step two\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n[Track it](https://example.com/t) `code`\n\n"
        )
        * n,
        "nested_blockquotes": "> " * n,
        "nested_blockquotes_shallow": ("> " * 19 + "x\n") * n,
        "nested_lists": "".join("  " * d + "- x\n" for d in range(n)),
        "nested_lists_shallow": "".join("  " * (d % 9) + "- x\n" for d in range(n)),
        "nested_brackets": "[" * n,
        "brackets_and_parens": "[](" * n,
        "emphasis_markers": "*a_" * n,
        "unclosed_emphasis": "**" * n,
        "alternating_emphasis": "*_" * n,
        "backticks": "`" * n,
        "backtick_runs": "".join("`" * (i % 50 + 1) + "a" for i in range(n)),
        "huge_table_wide": "|" + "a|" * n + "\n|" + "-|" * n + "\n" + "|b|\n" * n,
        "huge_table_tall": "|" + "a|" * 50 + "\n|" + "-|" * 50 + "\n" + row * n,
        "many_links": "[a](https://e.co/) " * n,
        "many_reference_links": "".join(f"[l{i}]: https://e.co/{i}\n" for i in range(n // 40))
        + "[l1] " * n,
        "link_destinations": "[a](<" * n,
        "html_soup": "<a href=x onclick=y>" * n,
        "entities": "&amp;&#x41;&bogus;" * n,
        "autolinks": "<https://e.co/a> " * n,
    }
    out = {name: text[:n] for name, text in texts.items()}
    # Past MAX_MARKUP markup characters or MAX_LINES lines a text is shown plain (cheap), so
    # the costliest texts are those just under: each shape cut to the budget, then prose.
    for name, text in texts.items():
        cut = at_budget(text[:n])
        out[f"{name}@budget"] = (cut + "\n\n" + PROSE * n)[:n] if len(cut) < n else cut
    return out


def at_budget(text: str) -> str:
    """The longest prefix of `text` within the markup budget (with room for the joining)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        cut = text[:mid]
        if markup_count(cut) <= MAX_MARKUP - 2 and cut.count("\n") <= MAX_LINES - 2:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def cpu_ms(fn: Callable[[str], str], text: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn(text)
        best = min(best, time.process_time() - started)
    return round(best * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rendered: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for name, text in shapes(args.n).items():
        rendered[name] = cpu_ms(render_markdown, text, args.repeat)
        baseline[name] = cpu_ms(html.escape, text, args.repeat)
        say(f"{name:28} {rendered[name]:8.2f} ms  (html.escape {baseline[name]:.2f} ms)")
    worst = max(rendered, key=rendered.__getitem__)
    over = [name for name, text in shapes(args.n).items() if too_costly(text)]
    emit_figures(
        {
            "bench": "markdown",
            "chars": args.n,
            "worst_shape": worst,
            "worst_ms": rendered[worst],
            "worst_baseline_ms": baseline[worst],
            "ordinary_ms": rendered["ordinary_answer"],
            "max_baseline_ms": max(baseline.values()),
            "markup_budget": MAX_MARKUP,
            "line_budget": MAX_LINES,
            "shapes_shown_plain": len(over),
            "shapes_ms": rendered,
        }
    )


if __name__ == "__main__":
    main()
