"""Word diff benchmark (issue 17): the CPU time of one diff request's work (reviews.selectors.
word_diff and the `_diff.html` fragment) on adversarial inputs at the documented input
limit (settings.INGEST_MAX_TEXT_CHARS), beside the code before the fix (token cap 4,000,
then an unbounded line diff) and a raw baseline (plain difflib on an ordinary answer).

    python bench/diff.py [--n 20000] [--before-timeout 20]

Target: under 100 ms of CPU per request whatever the shape. Pure Python, no database. The
last line is one JSON object of the figures; `before_ms` is null for a shape the old code
did not finish within the timeout (it is then reported in `before_timed_out`).
"""

from __future__ import annotations

import argparse
import difflib
import math
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")

from _common import emit_figures, say  # noqa: E402

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def shapes(n: int, side: int = 200) -> dict[str, tuple[str, str]]:
    """(original, edited) pairs of at most `n` characters each, and two of `side` tokens or
    lines each (side × side = the diff's budget, reviews.selectors.WORD_DIFF_MAX_CELLS)."""
    k, h = side - 1, (side - 1) // 2
    return {
        "repeated_token": ("a " * (n // 2), "a " * (n // 2 - 1) + "b "),
        "alternating_tokens": ("a b " * (n // 4), "b a " * (n // 4)),
        "alternating_punctuation": (".," * (n // 2), ",." * (n // 2)),
        "many_lines": ("a\n" * (n // 2), "b\na\n" * (n // 4)),
        "one_huge_token": ("x" * n, "x" * (n - 1) + "y"),
        "combining_marks": ("e\u0301 " * (n // 3), "\u00e9 " * (n // 2)),
        "rtl_and_emoji": ("שלום 👋 " * (n // 8), "👋 שלום " * (n // 8)),
        "under_the_old_cap": ("a b " * 999, "b a " * 999),
        # The worst shapes found just under the new budget (many matching blocks, each
        # scanning every position of a repeated element).
        "repeated_lines_in_budget": ("a\n" * k + "x", "b\na\n" * h + "y"),
        "repeated_punct_in_budget": ("." * k + "z", ",." * h + "w"),
    }


def before(original: str, edited: str) -> list:
    """The word diff as it was: a 4,000-token cap, then an unbounded line diff."""
    a, b = _TOKEN.findall(original), _TOKEN.findall(edited)
    if max(len(a), len(b)) > 4000:
        a, b = original.splitlines(keepends=True), edited.splitlines(keepends=True)
    return difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()


def _cpu_ms(fn, *args) -> float:
    started = time.process_time()
    fn(*args)
    return round((time.process_time() - started) * 1000, 1)


def _before_child(original: str, edited: str, out) -> None:
    out.put(_cpu_ms(before, original, edited))


def before_ms(original: str, edited: str, timeout: float) -> float | None:
    """The old code's CPU time in a child process, None when it did not finish in time."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=_before_child, args=(original, edited, out))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return out.get()


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.template.loader import render_to_string

    from reviews.selectors import WORD_DIFF_MAX_CELLS, word_diff

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=settings.INGEST_MAX_TEXT_CHARS)
    parser.add_argument("--before-timeout", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    def request_work(original: str, edited: str) -> None:
        diff = word_diff(original, edited)
        render_to_string("reviews/_diff.html", {"item": {"pk": 1}, "diff": diff})

    after: dict[str, float] = {}
    old: dict[str, float | None] = {}
    for name, (original, edited) in shapes(args.n, math.isqrt(WORD_DIFF_MAX_CELLS)).items():
        after[name] = max(_cpu_ms(request_work, original, edited) for _ in range(args.repeat))
        old[name] = before_ms(original, edited, args.before_timeout)
        say(f"{name}: after {after[name]} ms, before {old[name]} ms")

    ordinary = "You can return an item within 30 days of delivery, with its receipt. " * 3
    edited = ordinary.replace("30 days", "14 days").replace("receipt", "order number")
    raw = max(
        _cpu_ms(
            lambda: difflib.SequenceMatcher(
                None, _TOKEN.findall(ordinary), _TOKEN.findall(edited), autojunk=False
            ).get_opcodes()
        )
        for _ in range(args.repeat)
    )
    project_ordinary = max(_cpu_ms(request_work, ordinary, edited) for _ in range(args.repeat))
    finished = [v for v in old.values() if v is not None]
    emit_figures(
        {
            "bench": "diff",
            "n": args.n,
            "worst_ms": max(after.values()),
            "worst_shape": max(after, key=after.__getitem__),
            "before_worst_ms": max(finished) if finished else None,
            "before_timed_out": sorted(k for k, v in old.items() if v is None),
            "before_timeout_s": args.before_timeout,
            "ordinary_ms": project_ordinary,
            "raw_ordinary_ms": raw,
            "after_ms": after,
            "before_ms": old,
        }
    )


if __name__ == "__main__":
    main()
