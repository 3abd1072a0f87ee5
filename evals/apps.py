from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evaluations"

    def ready(self) -> None:
        from evals import exports, runs
        from evals.signals import comparison_decided

        # A decided regression comparison settles the answer it judges.
        comparison_decided.connect(
            runs.comparison_judged, dispatch_uid="evals.runs.comparison_judged"
        )
        # The `comparisons` export dataset (retraining may not import evals).
        exports.register()
