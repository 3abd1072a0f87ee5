"""The shape of an agent's slug, as the API and the token scopes accept it (one definition
for apps that cannot import each other: ingest validates records, accounts token scopes)."""

import re

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
