"""The pairwise review queue: my comparisons, the comparison screen, adjudication."""

from django.urls import path

from evals import manage_views, regression_views, views

app_name = "evals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("claim", views.claim, name="claim"),
    path("disputed/", views.disputed, name="disputed"),
    path("manage/", manage_views.manage, name="manage"),
    path("manage/assign", manage_views.assign, name="manage_assign"),
    path("regression/", regression_views.regression_set, name="regression"),
    path("regression/download", regression_views.regression_download, name="regression_download"),
    path("<int:comparison_id>/", views.compare, name="compare"),
    path("<int:comparison_id>/decide", views.decide, name="decide"),
    path("<int:comparison_id>/skip", views.skip, name="skip"),
    path("<int:comparison_id>/lease", views.lease, name="lease"),
    path("<int:comparison_id>/adjudicate", views.adjudicate, name="adjudicate"),
]
