from typing import BinaryIO

from ingest.management.commands._importing import ImportCommand
from ingest.readers import ProgressTracker
from ingest.services import IngestResult, interactions_ingest, interactions_ingest_file


class Command(ImportCommand):
    help = (
        "Imports interactions from JSONL (or a JSON array). Prints 'imported N, duplicates N, "
        "rejected N' and one 'line L: FIELD: MESSAGE' per rejected record. Exit 0 when nothing "
        "was rejected, 1 when some records were, 2 when the input could not be read."
    )
    ingest = staticmethod(interactions_ingest)

    def ingest_stream(self, stream: BinaryIO, tracker: ProgressTracker, **options) -> IngestResult:
        # Pipelined on PostgreSQL: parsing and writing overlap (see interactions_ingest_file).
        return interactions_ingest_file(
            stream=stream, source=self.source, progress=tracker, **options
        )
