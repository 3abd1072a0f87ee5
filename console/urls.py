from django.urls import path

from console import views as console

app_name = "console"

urlpatterns = [
    path("", console.browser, name="browser"),
    path("bulk", console.bulk, name="bulk"),
    path("workload/", console.workload_page, name="workload"),
    path("pools/", console.pools, name="pools"),
    path("pools/<int:user_id>/", console.pool_edit, name="pool_edit"),
    path("agents/", console.agents, name="agents"),
    path("agents/<slug:slug>/", console.agent_edit, name="agent_edit"),
    path("audit/", console.audit, name="audit"),
]
