"""The word diff of a correction: exact on ordinary edits, bounded work on any input up to
the documented limit (settings.INGEST_MAX_TEXT_CHARS). Timings are measured in
bench/diff.py; here the bound is asserted structurally: difflib never sees more than the
budget of token pairs, and the coarse fallback is used (and said) beyond it."""

import difflib

import pytest
from django.conf import settings

from reviews import selectors
from reviews.selectors import WORD_DIFF_MAX_CELLS, word_diff
from tests.factories import AgentFactory, ReviewItemFactory

N = settings.INGEST_MAX_TEXT_CHARS
HTMX = {"HTTP_HX_REQUEST": "true"}

# (original, edited) pairs at the documented limit, shaped to make a quadratic matcher slow.
ADVERSARIAL = {
    "repeated_token": ("a " * (N // 2), "a " * (N // 2 - 1) + "b "),
    "alternating_tokens": ("a b " * (N // 4), "b a " * (N // 4)),
    "alternating_punctuation": (".," * (N // 2), ",." * (N // 2)),
    "many_lines": ("a\n" * (N // 2), "b\na\n" * (N // 4)),
    "one_huge_token": ("x" * N, "x" * (N - 1) + "y"),
    "combining_marks": ("e\u0301 " * (N // 3), "\u00e9 " * (N // 2)),
    "rtl_and_emoji": ("שלום 👋 " * (N // 8), "👋 שלום " * (N // 8)),
    "under_the_old_cap": ("a b " * 999, "b a " * 999),
}


@pytest.fixture
def matcher_sizes(monkeypatch):
    """The (len(a), len(b)) of every SequenceMatcher the diff builds."""
    sizes: list[tuple[int, int]] = []

    class Recording(difflib.SequenceMatcher):
        def __init__(self, isjunk=None, a="", b="", autojunk=True):
            sizes.append((len(a), len(b)))
            super().__init__(isjunk, a, b, autojunk)

    monkeypatch.setattr(selectors.difflib, "SequenceMatcher", Recording)
    return sizes


def rebuild(diff, side):
    skip = "insert" if side == "original" else "delete"
    return "".join(text for op, text in diff["segments"] if op != skip)


def test_it_diffs_an_ordinary_edit_word_by_word():
    diff = word_diff("Returns within 30 days.", "Returns within 14 days.")
    assert diff["segments"] == [
        ("equal", "Returns within "),
        ("delete", "30"),
        ("insert", "14"),
        ("equal", " days."),
    ]
    assert (diff["added"], diff["removed"], diff["word_by_word"]) == (1, 1, True)


def test_it_diffs_a_small_edit_of_a_long_answer_word_by_word(matcher_sizes):
    original = "word " * (N // 5 - 2)  # the edit keeps it within the limit
    edited = original[:5000] + "changed " + original[5000:]
    assert len(edited) <= N
    diff = word_diff(original, edited)
    assert diff["word_by_word"] is True
    assert ("insert", "changed ") in diff["segments"]
    assert all(a * b <= WORD_DIFF_MAX_CELLS for a, b in matcher_sizes)


@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_it_bounds_the_matcher_on_adversarial_input(shape, matcher_sizes):
    original, edited = ADVERSARIAL[shape]
    assert len(original) <= N and len(edited) <= N
    diff = word_diff(original, edited)
    assert all(a * b <= WORD_DIFF_MAX_CELLS for a, b in matcher_sizes), matcher_sizes
    # Whatever the level, the segments still rebuild both texts exactly.
    assert rebuild(diff, "original") == original
    assert rebuild(diff, "edited") == edited


def test_it_falls_back_to_a_coarse_diff_and_says_so_over_the_budget():
    original, edited = ADVERSARIAL["alternating_tokens"]
    diff = word_diff(original, edited)
    assert diff["word_by_word"] is False
    assert diff["changed"] is True
    assert diff["added"] > 0 and diff["removed"] > 0


def test_it_says_too_large_on_the_diff_fragment(client, reviewer):
    from reviews import services

    agent = AgentFactory(slug="support-bot", domain="support")
    original, edited = ADVERSARIAL["alternating_tokens"]
    ReviewItemFactory(interaction__agent=agent, interaction__output=original)
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)
    response = client.post(f"/review/{item.pk}/diff", {"corrected_output": edited}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "too large to compare word by word" in html


# --- the budget and the text limit ------------------------------------------------------------
# The worst shapes just under a budget: many matching blocks, each scanning every repeat of
# an element. At the old budget (200 × 200 token pairs) they cost ~200 ms of CPU; the budget
# is now 100 × 100 (bench/diff.py measures both).
SQUARE_AT_THE_OLD_BUDGET = {
    "repeated_lines": ("a\n" * 199 + "x", "b\na\n" * 99 + "y"),
    "repeated_punct": ("." * 199 + "z", ",." * 99 + "w"),
}


@pytest.mark.parametrize("shape", SQUARE_AT_THE_OLD_BUDGET)
def test_it_no_longer_matches_the_worst_shapes_of_the_old_budget(shape, matcher_sizes):
    original, edited = SQUARE_AT_THE_OLD_BUDGET[shape]
    diff = word_diff(original, edited)
    assert all(a * b <= 100 * 100 for a, b in matcher_sizes), matcher_sizes
    assert diff["word_by_word"] is False  # compared by lines (fitting), or one replacement
    assert rebuild(diff, "original") == original
    assert rebuild(diff, "edited") == edited


def test_it_still_diffs_a_change_of_fifty_words_word_by_word():
    original = " ".join(f"w{i}" for i in range(200))
    edited = original.replace("w50 ", "x50 ").replace("w70 ", "x70 ")
    diff = word_diff(original, edited)
    assert diff["word_by_word"] is True
    assert (diff["added"], diff["removed"]) == (2, 2)


class Untokenisable:
    def findall(self, text):
        raise AssertionError("an over-limit text was tokenised")


def test_it_refuses_to_diff_a_text_over_the_limit_without_tokenising_it(monkeypatch):
    monkeypatch.setattr(selectors, "_TOKEN", Untokenisable())
    diff = word_diff("Returns within 30 days.", "a." * 12_500 + "xyz")
    assert diff["level"] == "too_long"
    assert diff["segments"] == [] and diff["word_by_word"] is False
    assert diff["message"] == "Your corrected answer is 25,003 characters; the limit is 20,000."


def test_it_counts_crlf_as_one_character_against_the_limit(monkeypatch):
    edited = "ab\r\n" * (N // 3)  # N // 3 * 4 characters as posted, N // 3 * 3 once normalised
    assert len(edited) > N
    assert word_diff("ab\n", edited)["level"] != "too_long"


def test_it_says_too_long_on_the_diff_fragment_without_tokenising(client, reviewer, monkeypatch):
    from reviews import services

    agent = AgentFactory(slug="support-bot", domain="support")
    ReviewItemFactory(interaction__agent=agent, interaction__output="Returns within 30 days.")
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)
    monkeypatch.setattr(selectors, "_TOKEN", Untokenisable())
    edited = "a." * 12_506 + "x"
    for headers in (HTMX, {}):  # the fragment, and the whole page without JavaScript
        response = client.post(f"/review/{item.pk}/diff", {"corrected_output": edited}, **headers)
        html = response.content.decode()
        assert response.status_code == 200
        assert "Your corrected answer is 25,013 characters; the limit is 20,000." in html
        assert "<ins>" not in html
