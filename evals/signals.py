"""Signals of the evals app.

`comparison_decided(comparison)`: sent inside the deciding transaction when a comparison
reaches `done` (its `outcome` set); the regression run of the answer it judges updates that
answer's outcome from it (evals/regression.py).
"""

from django.dispatch import Signal

comparison_decided = Signal()
