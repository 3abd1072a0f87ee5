from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from reviews.defaults import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="reviews-defaults")
