"""How the demo reviewers decide is pure: these tests have no `db` fixture, so pytest-django
fails any of them that touches the database."""

from collections import Counter
from datetime import date

from demo.reviewing import (
    PERSONAS,
    WORK_SHARE,
    adjudication_of,
    review_days,
    review_of,
    session_of,
)
from reviews.defaults import CATEGORIES

LENA = next(p for p in PERSONAS if p.username == "lena")
SLUGS = {slug for slug, *_ in CATEGORIES}
OUTPUT = "Yes, any non-compete is enforceable."
FIX = "Assuming German law: at most two years, with compensation (§ 74 HGB)."


def decide(persona=LENA, *, external_id="demo-1-000001", fix=FIX, domain="legal"):
    return review_of(
        persona,
        seed=1,
        external_id=external_id,
        intent="employment",
        domain=domain,
        output=OUTPUT,
        fix=fix,
    )


def test_it_decides_the_same_way_for_the_same_seed_item_and_reviewer():
    assert decide() == decide()
    many = {decide(external_id=f"demo-1-{i:06d}").verdict for i in range(200)}
    assert {"correct", "reject", "approve"} <= many


def test_it_corrects_a_weak_answer_with_the_plans_better_output():
    decisions = [decide(external_id=f"demo-1-{i:06d}") for i in range(300)]
    corrections = [d for d in decisions if d.verdict == "correct"]

    assert len(corrections) > len(decisions) / 2
    assert {d.corrected_output for d in corrections} == {FIX}
    assert all(d.error_category in SLUGS and d.notes for d in corrections)


def test_it_mostly_approves_a_sound_answer():
    verdicts = Counter(
        decide(external_id=f"demo-1-{i:06d}", fix=None, domain="support").verdict
        for i in range(400)
    )

    assert verdicts["approve"] > 0.8 * 400
    assert verdicts["correct"] > 0  # a friendlier tone now and then


def test_two_reviewers_of_one_item_decide_independently():
    """They agree on most answers and disagree on some: what the agreement page measures."""
    omar = next(p for p in PERSONAS if p.username == "omar")
    items = [(f"demo-1-{i:06d}", FIX if i % 2 else None) for i in range(300)]
    pairs = [
        (decide(external_id=x, fix=fix).verdict, decide(omar, external_id=x, fix=fix).verdict)
        for x, fix in items
    ]

    agree = sum(a == b for a, b in pairs)
    assert 0.6 * len(pairs) < agree < 0.95 * len(pairs)


def test_the_lead_settles_with_the_fix_or_an_approval():
    weak = adjudication_of(seed=1, external_id="demo-1-000002", intent="gdpr", fix=FIX)
    sound = adjudication_of(seed=1, external_id="demo-1-000002", intent="gdpr", fix=None)

    assert weak.verdict in ("correct", "reject")
    assert weak.corrected_output == (FIX if weak.verdict == "correct" else "")
    assert sound.verdict in ("approve", "reject") and not sound.corrected_output


def test_it_works_weekdays_only_and_stops_before_the_last_days():
    days = review_days(date(2026, 11, 2), date(2026, 12, 3))

    assert days[0] == date(2026, 11, 3) and days[-1] == date(2026, 12, 1)
    saturday = date(2026, 11, 7)
    assert WORK_SHARE[saturday.weekday()] == 0
    assert all(session_of(p, seed=1, day=saturday) is None for p in PERSONAS)
    monday = session_of(LENA, seed=1, day=date(2026, 11, 9))
    assert monday is not None and 7 <= monday.clock.hour < 10 and not monday.over


def test_every_domain_has_at_least_two_reviewers():
    for domain, n in Counter(d for p in PERSONAS for d in p.domains).items():
        assert n >= 2, domain
