"""Events of the reviews app for the apps above it: reviews does not import them (the
dependency points down), they listen.

`item_decided` is sent inside the deciding transaction, once, when an item reaches `done`,
with `item` (its `interaction` loaded), `final` (the deciding review), `reviews` (the
reviews that agree with it) and `scores` (the final review's rubric scores as
`{key: value, "_rubric_version": N}`, {} for none; None when the sender does not have them,
as for an adjudication: `reviews.rubrics.scores_of` reads them). A receiver that raises
rolls the decision back; what a receiver returns is handed back to the caller of the
decision (`Outcome.pair`).

`decision_undone` is sent inside `services.review_undo`'s transaction, with the item row
locked, before anything is removed, with `item` and `review` (the decision being taken back;
the item is still as that decision left it). A receiver removes what it made of the decision
and returns what it removed as a dict for the audit event (e.g. `{"pair": 12}`), or refuses
by raising `services.UndoRefused` with a message for the reviewer (everything rolls back).
"""

from django.dispatch import Signal

item_decided = Signal()
decision_undone = Signal()
