"""The review lead's console, under /console/."""

from django.urls import path

from console import adjudication, deadlines, pools, privacy, views

app_name = "console"

urlpatterns = [
    path("", views.browser, name="browser"),
    path("bulk", views.bulk, name="bulk"),
    path("items/<int:item_id>/", views.item, name="item"),
    path("items/<int:item_id>/reveal", privacy.reveal, name="reveal"),
    path("workload/", views.workload_page, name="workload"),
    path("pools/", pools.pools, name="pools"),
    # Before the pool page: its domain may be any text (slashes too), but never without the
    # trailing slash these two lack.
    path("pools/add", pools.pool_add, name="pool_add"),
    path("pools/remove", pools.pool_remove, name="pool_remove"),
    path("pools/<path:domain>/", pools.pool, name="pool"),
    path("reviewers/<int:user_id>/", pools.reviewer_edit, name="reviewer_edit"),
    path("agents/", views.agents, name="agents"),
    path("agents/<slug:slug>/", views.agent_edit, name="agent_edit"),
    path("agents/<slug:slug>/rubric", views.rubric_edit, name="rubric_edit"),
    path("audit/", views.audit, name="audit"),
    path("deadlines/", deadlines.deadlines, name="deadlines"),
    path("deadlines/<int:pk>/remove", deadlines.deadline_remove, name="deadline_remove"),
    path("adjudication/", adjudication.adjudication_list, name="adjudication_list"),
    path("adjudication/<int:item_id>/", adjudication.adjudication_detail, name="adjudication"),
]
