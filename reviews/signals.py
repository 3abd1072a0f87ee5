"""Events of the reviews app for the apps above it: reviews does not import them (the
dependency points down), they listen.

`item_decided` is sent inside the deciding transaction, once, when an item reaches `done`,
with `item` (its `interaction` loaded), `final` (the deciding review) and `reviews` (the
reviews that agree with it). A receiver that raises rolls the decision back; what a receiver
returns is handed back to the caller of the decision (`Outcome.pair`).
"""

from django.dispatch import Signal

item_decided = Signal()
