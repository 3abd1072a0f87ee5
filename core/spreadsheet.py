"""CSV output that spreadsheet programs cannot be tricked into executing.

A cell that starts with `=`, `+`, `-`, `@` (or a tab / carriage return, which some programs
strip before looking) is a formula to Excel and LibreOffice; agent text is untrusted, so such
cells get a leading apostrophe, the OWASP-recommended neutraliser.
"""

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_lines(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Yields CSV text chunk by chunk (for a StreamingHttpResponse), every cell guarded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
