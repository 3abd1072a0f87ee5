"""`manage.py regression_set --agent SLUG [--intent X] [--domain Y] [--error-category C]
[--agent-version V] [--from YYYY-MM-DD] [--to YYYY-MM-DD] --output FILE.jsonl`: writes the
agent's regression set, one case a line (the API's case objects), streamed; `-` writes to
stdout. Prints `wrote N cases to FILE` on stderr. Exit 2 for a bad request."""

import sys
from contextlib import nullcontext
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError

from evals import regression, selectors


class Command(BaseCommand):
    help = "Writes an agent's regression set (held-out corrected and rejected items) as JSONL."

    def add_arguments(self, parser):
        parser.add_argument("--agent", required=True, help="agent slug")
        parser.add_argument("--intent")
        parser.add_argument("--domain")
        parser.add_argument("--error-category", dest="error_category", help="category slug")
        parser.add_argument("--agent-version", dest="agent_version")
        parser.add_argument("--from", dest="date_from", help="decided on or after YYYY-MM-DD")
        parser.add_argument("--to", dest="date_to", help="decided on or before YYYY-MM-DD")
        parser.add_argument("--output", required=True, help="FILE.jsonl, or - for stdout")

    def handle(self, *args, **options):
        agent = selectors.agent_by_slug(options["agent"])
        if agent is None:
            raise CommandError(f"unknown agent {options['agent']!r}", returncode=2)
        names = ("intent", "domain", "error_category", "agent_version", "date_from", "date_to")
        try:
            filters = regression.filters_clean({name: options[name] for name in names})
        except regression.InvalidRequest as exc:
            raise CommandError(str(exc), returncode=2) from None
        target = options["output"]
        n = 0
        with (
            nullcontext(sys.stdout.buffer)
            if target == "-"
            else Path(target).open("wb", buffering=1 << 20)
        ) as out:
            for case in regression.cases_iter(agent, filters):
                out.write(orjson.dumps(case.as_json(), option=orjson.OPT_APPEND_NEWLINE))
                n += 1
            out.flush()
        self.stderr.write(f"wrote {n} cases to {'stdout' if target == '-' else target}")
