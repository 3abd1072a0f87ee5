from django.urls import path

from kpis import privacy_views, rubric_views, sla_views, views

app_name = "kpis"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("export.csv", views.export_csv, name="export"),
    path("calibration/", views.calibration, name="calibration"),
    path("agreement/", views.agreement, name="agreement"),
    path("rubrics/", rubric_views.rubric_kpis, name="rubrics"),
    path("privacy/", privacy_views.privacy_kpis, name="privacy"),
    path("deadlines/", sla_views.deadlines, name="deadlines"),
    path("recompute/", views.recompute, name="recompute"),
    path("runs/<int:pk>/", views.run_status, name="run"),
]
