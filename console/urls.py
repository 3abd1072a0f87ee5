"""The review lead's console, under /console/."""

from django.urls import path

from console import adjudication, views

app_name = "console"

urlpatterns = [
    path("", views.browser, name="browser"),
    path("bulk", views.bulk, name="bulk"),
    path("workload/", views.workload_page, name="workload"),
    path("pools/", views.pools, name="pools"),
    path("pools/<int:user_id>/", views.pool_edit, name="pool_edit"),
    path("agents/", views.agents, name="agents"),
    path("agents/<slug:slug>/", views.agent_edit, name="agent_edit"),
    path("audit/", views.audit, name="audit"),
    path("adjudication/", adjudication.adjudication_list, name="adjudication_list"),
    path("adjudication/<int:item_id>/", adjudication.adjudication_detail, name="adjudication"),
]
