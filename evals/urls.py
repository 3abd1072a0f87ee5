"""The pairwise review queue: my comparisons, the comparison screen, adjudication."""

from django.urls import path

from evals import views

app_name = "evals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("claim", views.claim, name="claim"),
    path("disputed/", views.disputed, name="disputed"),
    path("<int:comparison_id>/", views.compare, name="compare"),
    path("<int:comparison_id>/decide", views.decide, name="decide"),
    path("<int:comparison_id>/skip", views.skip, name="skip"),
    path("<int:comparison_id>/lease", views.lease, name="lease"),
    path("<int:comparison_id>/adjudicate", views.adjudicate, name="adjudicate"),
]
