"""The reviewer's pages: my queue, my recent decisions, the review screen and its fragments."""

from django.urls import path

from reviews import views

app_name = "reviews"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("queue/claim", views.queue_claim, name="queue_claim"),
    path("queue/decisions/", views.decisions, name="decisions"),
    path("review/<int:item_id>/", views.review, name="review"),
    path("review/<int:item_id>/decide", views.review_decide, name="decide"),
    path("review/<int:item_id>/lease", views.review_lease, name="lease"),
    path("review/<int:item_id>/diff", views.review_diff, name="diff"),
    path("review/<int:item_id>/undo", views.review_undo, name="undo"),
]
