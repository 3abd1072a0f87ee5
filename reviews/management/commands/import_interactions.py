from reviews.ingest import interactions_ingest
from reviews.management.commands._importing import ImportCommand


class Command(ImportCommand):
    help = (
        "Imports interactions from JSONL (or a JSON array). Prints 'imported N, duplicates N, "
        "rejected N' and one 'line L: FIELD: MESSAGE' per rejected record. Exit 0 when nothing "
        "was rejected, 1 when some records were, 2 when the input could not be read."
    )
    ingest = staticmethod(interactions_ingest)
