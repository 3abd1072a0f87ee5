from reviews.ingest import feedback_ingest
from reviews.management.commands._importing import ImportCommand


class Command(ImportCommand):
    help = (
        "Imports feedback events from JSONL (or a JSON array): the same output and exit codes "
        "as import_interactions."
    )
    ingest = staticmethod(feedback_ingest)
