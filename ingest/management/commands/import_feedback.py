from ingest.management.commands._importing import ImportCommand
from ingest.services import feedback_ingest


class Command(ImportCommand):
    help = (
        "Imports feedback events from JSONL (or a JSON array): the same output and exit codes "
        "as import_interactions."
    )
    ingest = staticmethod(feedback_ingest)
