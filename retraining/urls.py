from django.urls import path

from retraining import views

app_name = "retraining"

urlpatterns = [
    path("", views.exports, name="exports"),
    path("build/", views.build, name="build"),
    path("<int:pk>/row/", views.batch_row, name="batch_row"),
    path("<int:pk>/retry/", views.retry, name="retry"),
    path("<int:pk>/trained/", views.mark_trained, name="trained"),
    path("<int:pk>/download/", views.download, name="download"),
    path("<int:pk>/manifest/", views.manifest, name="manifest"),
]
