from django.apps import AppConfig


class RetrainingConfig(AppConfig):
    name = "retraining"
    verbose_name = "Retraining"

    def ready(self) -> None:
        from retraining.receivers import training_pair_from_decision, training_pair_undo
        from reviews.signals import decision_undone, item_decided

        item_decided.connect(training_pair_from_decision, dispatch_uid="retraining-pair")
        decision_undone.connect(training_pair_undo, dispatch_uid="retraining-pair-undo")
