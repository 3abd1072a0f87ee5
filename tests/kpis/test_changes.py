"""What changed since the last run (kpis/changes.py)."""

from datetime import date

from kpis import changes

NOV2, NOV4 = date(2026, 11, 2), date(2026, 11, 4)


def test_it_counts_a_touched_day_per_source(dataset):
    touched, top = changes.touched_since("review", 0)
    agent = dataset.agent.pk
    # reviews: on 2 Nov about 2 Nov responses, and i3's (2 Nov response) on 4 Nov
    assert touched == {(agent, NOV2), (agent, NOV4)}
    assert top == max(r.pk for item in dataset.items.values() for r in item.reviews.all())
