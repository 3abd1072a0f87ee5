"""`manage.py export_batch --agent SLUG --format FMT [--new-only] [--out PATH]`: builds a
batch synchronously (no Celery) and prints its id, row count, sha256 and path. Filters as
options (`--intent X --intent Y --domain Z`: repeatable, as the API's lists).

Exit 2 for a bad request, 3 when nothing matches (no empty batch is built: "only new
pairs" with none new, say), 4 over the per-user limits (--user), 1 when the build fails.
It always builds: an identical earlier batch is not reused (the way to rebuild on purpose,
e.g. to check that the file is byte-identical)."""

import shutil
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError

from retraining import selectors, services
from retraining.models import ExportBatch


class Command(BaseCommand):
    help = "Builds a retraining batch now and prints its id, row count, sha256 and path."

    def add_arguments(self, parser):
        parser.add_argument("--agent", required=True, help="agent slug")
        parser.add_argument(
            "--format", required=True, choices=ExportBatch.Format.values, dest="fmt"
        )
        parser.add_argument("--new-only", action="store_true", help="only pairs in no batch yet")
        parser.add_argument("--out", help="also copy the file here (the manifest goes beside it)")
        parser.add_argument(
            "--dataset", choices=ExportBatch.Dataset.values, default=ExportBatch.Dataset.PAIRS
        )
        parser.add_argument("--from", dest="date_from", help="decided on or after YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", help="decided on or before YYYY-MM-DD")
        parser.add_argument("--source", action="append", dest="sources", help="approve / correct")
        parser.add_argument(
            "--error-category",
            action="append",
            dest="error_categories",
            help="category slug; 'none' for pairs without one (repeatable)",
        )
        parser.add_argument("--agent-version", action="append", dest="agent_versions")
        parser.add_argument("--min-reviews", type=int)
        parser.add_argument(
            "--kind",
            action="append",
            dest="kinds",
            help="feedback kinds; comparison kinds (versions / regression)",
        )
        parser.add_argument(
            "--intent",
            action="append",
            dest="intents",
            help="the interaction's (comparison's) intent (repeatable; every dataset)",
        )
        parser.add_argument(
            "--domain",
            action="append",
            dest="domains",
            help="the interaction's (comparison's) domain (repeatable; every dataset)",
        )
        parser.add_argument("--user", help="record this username as the requester")

    def handle(self, *args, **options):
        agent = selectors.agent_by_slug(options["agent"])
        if agent is None:
            raise CommandError(f"unknown agent {options['agent']!r}", returncode=2)
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"unknown user {options['user']!r}", returncode=2)
        feedback = options["dataset"] == ExportBatch.Dataset.FEEDBACK
        comparisons = options["dataset"] == ExportBatch.Dataset.COMPARISONS
        filters = {
            key: options[key]
            for key in (
                ("date_from", "date_to", "kinds", "intents", "domains")
                if feedback
                else ("date_from", "date_to", "agent_versions", "kinds", "intents", "domains")
                if comparisons
                else (
                    "date_from",
                    "date_to",
                    "sources",
                    "agent_versions",
                    "min_reviews",
                    "intents",
                    "domains",
                )
            )
            if options[key]
        }
        if options["error_categories"] and not (feedback or comparisons):
            filters["error_categories"] = [
                None if c == "none" else c for c in options["error_categories"]
            ]
        try:
            batch = services.batch_request(
                agent=agent,
                format=options["fmt"],
                dataset=options["dataset"],
                filters=filters,
                new_only=options["new_only"],
                actor=actor,
                enqueue=False,
                refuse_empty=True,
            )
        except services.InvalidRequest as exc:
            if set(exc.errors) == {"selection"}:
                raise CommandError(exc.errors["selection"], returncode=3) from None
            raise CommandError(str(exc), returncode=2) from None
        except services.TooManyActive as exc:
            raise CommandError(str(exc), returncode=4) from None
        services.batch_build(batch_id=batch.pk)
        batch = selectors.batch_get(batch.pk)
        if batch.status != ExportBatch.Status.READY:
            raise CommandError(f"batch {batch.pk} {batch.status}: {batch.failure_reason}")

        path, manifest_path = self._place(batch, options["out"])
        self.stdout.write(f"id {batch.pk}")
        self.stdout.write(f"rows {batch.row_count}")
        self.stdout.write(f"sha256 {batch.sha256}")
        self.stdout.write(f"path {path}")
        self.stdout.write(f"manifest {manifest_path}")

    def _place(self, batch: ExportBatch, out: str | None) -> tuple[str, str]:
        names = batch.file.name or "", batch.manifest_file.name or ""
        if out:
            target = Path(out).resolve()
            target.parent.mkdir(parents=True, exist_ok=True)
            manifest = target.with_name(f"{target.stem}.manifest.json")
            for src, dest in zip(names, (target, manifest), strict=True):
                with default_storage.open(src, "rb") as source, open(dest, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1024 * 1024)
            return str(target), str(manifest)
        try:
            return default_storage.path(names[0]), default_storage.path(names[1])
        except NotImplementedError:  # object storage: the name is the address
            return names
