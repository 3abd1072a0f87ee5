from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews"

    def ready(self) -> None:
        from reviews.defaults import on_post_migrate
        from reviews.models import ErrorCategory
        from reviews.selectors import taxonomy_changed

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="reviews-defaults")
        for signal in (post_save, post_delete):
            signal.connect(taxonomy_changed, sender=ErrorCategory, dispatch_uid="reviews-taxonomy")
