"""Personal data redaction: finding e-mail addresses, phone numbers, IBANs, payment card
numbers and an agent's own patterns in text, and replacing each with a stable placeholder.

Pure: no models, no settings. The database side (the per-conversation mapping table, the
ingest and correction paths, the admin reveal) is in `agents.redacting` and `ingest.redact`.

The policy is a JSON object on the agent (`Agent.redaction`; empty means off)::

    {"types": ["email", "phone", "iban", "card"],
     "patterns": [{"name": "CASE_ID", "regex": "CASE-[0-9]{6}"}],
     "keep_originals": true,
     "regions": ["GB", "DE", "FR", "ES", "US"]}

What is found, and how (precision matters as much as recall: a placeholder where there was
no personal data hides what the reviewer must judge):
- email: a practical RFC-ish address (unicode letters allowed in the local part and the
  domain), a dotted domain whose last label is letters; `user@localhost`, `pkg@1.2.3` and
  file names such as `logo@2x.png` are not addresses.
- phone: phonenumbers' PhoneNumberMatcher at leniency VALID, once per region of the policy
  (a number in +international form is found whatever the region; a national one only when
  it is valid in one of the regions, the first region that finds it normalises it).
- iban: letters, two digits and up to 30 letters or digits, spaces allowed; kept only when
  python-stdnum validates it (country format, length and the mod-97 check digits).
- card: 12 to 19 digits, in one run or in the usual groups; kept only when the Luhn check
  passes, the length is one the card's issuer (its IIN prefix) uses.
- the agent's patterns: its regular expressions, as written, placeholder `[NAME_n]`.
Where two findings overlap, the first kind in that order wins: the agent's patterns, then
e-mail, IBAN, card, phone (an IBAN or a card number is also a long digit run a phone
matcher may like).

Placeholders are numbered per kind in the order values first appear in a conversation
(`ConversationMap`): the same value (after normalisation: lower-cased address, E.164 number,
compact IBAN, card digits) is the same placeholder in every text of every interaction of
the conversation. The mapping is keyed by an HMAC of the normalised value, so it works
when the originals are not kept; the original is kept, apart, only when the policy says so.

What the rest of the project shows and exports: the redacted texts, placeholders included,
never an original: review pages, the API, corrections (new personal data a reviewer types
into a correction is redacted with the conversation's mapping before it is stored) and every
export format. Originals, when kept, are shown only to admins by an audited reveal.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import phonenumbers
from phonenumbers import Leniency, PhoneNumberFormat, PhoneNumberMatcher
from stdnum import iban as stdnum_iban
from stdnum import luhn

EMAIL, PHONE, IBAN, CARD = "email", "phone", "iban", "card"
BUILTIN_KINDS = (EMAIL, PHONE, IBAN, CARD)
DEFAULT_REGIONS = ("GB", "DE", "FR", "ES", "IT", "NL", "US")
MAX_PATTERNS = 10
MAX_PATTERN_LENGTH = 200
PATTERN_NAME = re.compile(r"^[A-Z][A-Z_]{0,31}$")
_RESERVED_NAMES = frozenset(kind.upper() for kind in BUILTIN_KINDS)

# --- finding -------------------------------------------------------------------------------

_LOCAL = r"[\w%+~-]+(?:\.[\w%+~-]+)*"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL = re.compile(
    rf"(?<![\w.%+~-])({_LOCAL})@((?:{_LABEL}\.)+([^\W\d_]{{2,63}}))(?![\w-]|\.[^\W_])"
)
# File names that look like addresses (`icon@2x.png`): none of these is a mail domain.
_FILE_SUFFIXES = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "bmp",
        "ico",
        "css",
        "js",
        "mjs",
        "ts",
        "tsx",
        "jsx",
        "json",
        "yaml",
        "yml",
        "lock",
        "txt",
        "pdf",
        "html",
        "htm",
        "xml",
        "gz",
        "tgz",
        "exe",
        "dll",
    ]
)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
# A run of digits with single spaces or hyphens between groups, not inside a word, a
# decimal or a +international number.
_DIGIT_RUN = re.compile(r"(?<![\w+.,])[0-9]+(?:[ -][0-9]+)*(?![\w])")
# Where a phone number may be: 7 digits or more (no full number of the regions we know is
# shorter, trunk prefix included) with the separators numbers are written with. The matcher
# (slow: pure Python) only reads these windows, with a little context either side.
_PHONE_CANDIDATE = re.compile(r"[+(]?[0-9](?:[ \t().\-/]{0,3}[0-9]){6,}")
_PHONE_CONTEXT = 3
# A date on its own, never a phone number: 2026-11-28, 28.11.2026, 03/15/2024.
_DATE = re.compile(r"\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2\d{4}")
# Card issuers by IIN prefix range (inclusive, compared on the first len(low) digits) and
# the lengths each issues: Visa, Mastercard (51-55 and 2221-2720), American Express,
# Discover, JCB, Diners Club, Maestro, UnionPay, Mir.
_IIN_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),
    ("51", "55", frozenset({16})),
    ("2221", "2720", frozenset({16})),
    ("34", "34", frozenset({15})),
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset(range(16, 20))),
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),
    ("300", "305", frozenset(range(14, 20))),
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(16, 20))),
    ("50", "50", frozenset(range(12, 20))),
    ("56", "58", frozenset(range(12, 20))),
    ("62", "62", frozenset(range(16, 20))),
    ("67", "67", frozenset(range(12, 20))),
    ("2200", "2204", frozenset(range(16, 20))),
)
# Groupings a card number is printed in, besides one unbroken run.
_CARD_GROUPS = frozenset({(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 6, 5), (4, 6, 4)})


def card_issuer_ok(digits: str) -> bool:
    """Whether `digits` starts with a known issuer's prefix at a length it issues."""
    n = len(digits)
    for low, high, lengths in _IIN_RANGES:
        if n in lengths and low <= digits[: len(low)] <= high:
            return True
    return False


def is_card(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and card_issuer_ok(digits) and luhn.is_valid(digits)


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    kind: str
    value: str  # normalised: what the placeholder stands for


def _emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        if m.group(3).lower() in _FILE_SUFFIXES:
            continue
        yield Finding(m.start(), m.end(), EMAIL, m.group(0).lower())


def _ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group(0)
        # The greedy match may run into the next word ("…0130 00 bitte"): the longest
        # prefix that is a valid IBAN, ending on a character of the match.
        for end in range(len(raw), 14, -1):
            if raw[end - 1] == " ":
                continue
            compact = raw[:end].replace(" ", "").upper()
            if len(compact) < 15:
                break
            if stdnum_iban.is_valid(compact):
                yield Finding(m.start(), m.start() + end, IBAN, compact)
                break


def _in_account_number(text: str) -> Callable[[int, int], bool]:
    """Whether a span lies inside an IBAN-shaped run (one with a bad checksum, since valid
    ones are found first): its digits are neither a card nor a phone number."""
    spans = [m.span() for m in _IBAN.finditer(text)]
    return lambda start, end: any(s <= start and end <= e for s, e in spans)


def _cards(text: str) -> Iterator[Finding]:
    in_account = None
    for m in _DIGIT_RUN.finditer(text):
        run = m.group(0)
        digits = run.replace(" ", "").replace("-", "")
        if len(digits) < 12:
            continue
        if in_account is None:
            in_account = _in_account_number(text)
        if in_account(m.start(), m.end()):
            continue
        if len(digits) <= 19 and is_card(digits):
            yield Finding(m.start(), m.end(), CARD, digits)
            continue
        # A card followed or preceded by other numbers ("4111 1111 1111 1111 12 27"):
        # windows of whole groups printed the way cards are.
        groups = [(g.start(), g.end()) for g in re.finditer(r"[0-9]+", run)]
        if tuple(e - s for s, e in groups) in _CARD_GROUPS:
            continue  # printed as one card number, and not a valid one: not part of one
        i = 0
        while i < len(groups):
            found = None
            for j in range(min(len(groups), i + 5), i, -1):
                sizes = tuple(e - s for s, e in groups[i:j])
                if sizes not in _CARD_GROUPS and not (j == i + 1 and 12 <= sizes[0] <= 19):
                    continue
                window = run[groups[i][0] : groups[j - 1][1]]
                candidate = window.replace(" ", "").replace("-", "")
                if is_card(candidate):
                    found = (groups[i][0], groups[j - 1][1], candidate, j)
                    break
            if found:
                start, end, candidate, i = found
                yield Finding(m.start() + start, m.start() + end, CARD, candidate)
            else:
                i += 1


def _part_of_longer_number(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is cut out of a longer digit run ("…4472 61|12 3456"): the
    matcher takes any valid number it can carve out of one, such as a card's digits."""
    before, after = text[max(0, start - 2) : start], text[end : end + 2]
    return bool(
        (before[-1:].isdigit() or (before[-1:] in (" ", "-") and before[:1].isdigit()))
        or (after[:1].isdigit() or (after[:1] in (" ", "-") and after[1:].isdigit()))
    )


def _phone_windows(text: str, taken: list[Finding]) -> list[tuple[int, int, bool]]:
    """A span around each phone candidate of `text`, with whether it is in +international
    form. Not merged with a neighbour's: the matcher drops a whole candidate that runs into
    a date ("+44 7400 123444. (03/15/2024)"), so a number next to a date would be lost;
    a match found from two windows is one finding (`seen` in `_phones`).

    Skipped, since the matcher cannot find a phone there (and it is the costly part): a
    candidate inside a finding of a kind that wins overlaps (an IBAN, a card number), and a
    bare date ("2026-11-28", "03/15/2024")."""
    windows = []
    for m in _PHONE_CANDIDATE.finditer(text):
        start, end = m.start(), m.end()
        if _DATE.fullmatch(m.group(0)) or any(g.start <= start and end <= g.end for g in taken):
            continue
        windows.append(
            (max(0, start - _PHONE_CONTEXT), end + _PHONE_CONTEXT, m.group(0).startswith("+"))
        )
    return windows


def _phones(text: str, regions: tuple[str, ...], taken: list[Finding]) -> Iterator[Finding]:
    windows = _phone_windows(text, taken)
    if not windows:
        return
    seen: set[tuple[int, int]] = set()
    in_account = _in_account_number(text)
    for offset, window_end, international in windows:
        window = text[offset:window_end]
        # A number in +international form is the same whatever the region: one pass. A
        # national one: the regions in order, until one finds a number there.
        for region in regions[:1] if international else regions:
            found = [
                f
                for m in _matches(window, region, offset)
                for f in _phone_finding(text, m, seen, in_account)
            ]
            yield from found
            if found:
                break


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    raw_string: str
    number: phonenumbers.PhoneNumber


def _matches(window: str, region: str, offset: int) -> Iterator[_Match]:
    for m in PhoneNumberMatcher(window, region, leniency=Leniency.VALID):
        yield _Match(m.start + offset, m.end + offset, m.raw_string, m.number)


def _phone_finding(
    text: str, m: _Match, seen: set[tuple[int, int]], in_account: Callable[[int, int], bool]
) -> Iterator[Finding]:
    """The match as a finding, unless another region found it already, it lies in an
    account number, or it is carved out of a longer number (a card's digits)."""
    if (m.start, m.end) in seen or in_account(m.start, m.end):
        return
    seen.add((m.start, m.end))
    raw = m.raw_string
    # No national number has 15 digits or more (E.164 allows 15 with the country code):
    # without a "+" that is a card or an account number, not a phone.
    if "+" not in raw and sum(ch.isdigit() for ch in raw) >= 15:
        return
    if _part_of_longer_number(text, m.start, m.end):
        return
    yield Finding(
        m.start, m.end, PHONE, phonenumbers.format_number(m.number, PhoneNumberFormat.E164)
    )


@dataclass(frozen=True)
class CustomPattern:
    name: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class RedactionPolicy:
    """A parsed, valid policy (`RedactionPolicy.parse`)."""

    types: frozenset[str]
    patterns: tuple[CustomPattern, ...] = ()
    keep_originals: bool = False
    regions: tuple[str, ...] = DEFAULT_REGIONS

    @classmethod
    def parse(cls, value: Mapping[str, Any] | None) -> RedactionPolicy | None:
        """The policy stored on an agent; None when redaction is off (an empty or invalid
        value: the console refuses invalid ones, see `policy_problems`)."""
        if not value or policy_problems(value):
            return None
        types = frozenset(value.get("types") or ())
        patterns = tuple(
            CustomPattern(p["name"], re.compile(p["regex"])) for p in value.get("patterns") or ()
        )
        if not types and not patterns:
            return None
        regions = tuple(value.get("regions") or DEFAULT_REGIONS)
        return cls(types, patterns, bool(value.get("keep_originals")), regions)

    def find(self, text: str) -> list[Finding]:
        """The non-overlapping findings in `text`, in text order (see the module docstring
        for which kind wins an overlap)."""
        found: list[Finding] = []

        def add(findings: Iterable[Finding]) -> None:
            for f in findings:
                if f.end > f.start and all(f.end <= g.start or f.start >= g.end for g in found):
                    found.append(f)

        for pattern in self.patterns:
            add(
                Finding(m.start(), m.end(), pattern.name, m.group(0))
                for m in pattern.regex.finditer(text)
            )
        types = self.types
        if EMAIL in types:
            add(_emails(text))
        if IBAN in types:
            add(_ibans(text))
        if CARD in types:
            add(_cards(text))
        if PHONE in types:
            add(_phones(text, self.regions, found))
        found.sort(key=lambda f: f.start)
        return found


def policy_problems(value: Any) -> list[str]:
    """What is wrong with a policy value, in words for the console form ([] when valid)."""
    if value in (None, {}):
        return []
    if not isinstance(value, dict):
        return ["must be an object"]
    problems: list[str] = []
    unknown = set(value) - {"types", "patterns", "keep_originals", "regions"}
    if unknown:
        problems.append(f"unknown keys: {', '.join(sorted(unknown))}")
    types = value.get("types") or []
    if not isinstance(types, list) or not all(t in BUILTIN_KINDS for t in types):
        problems.append(f"types must be a list of {', '.join(BUILTIN_KINDS)}")
    if not isinstance(value.get("keep_originals", False), bool):
        problems.append("keep_originals must be true or false")
    regions = value.get("regions") or []
    if not isinstance(regions, list) or not all(
        isinstance(r, str) and r in phonenumbers.SUPPORTED_REGIONS for r in regions
    ):
        problems.append("regions must be a list of two-letter region codes (e.g. GB, DE)")
    patterns = value.get("patterns") or []
    if not isinstance(patterns, list):
        return [*problems, "patterns must be a list"]
    if len(patterns) > MAX_PATTERNS:
        problems.append(f"at most {MAX_PATTERNS} patterns")
    names: set[str] = set()
    for i, p in enumerate(patterns, 1):
        if not isinstance(p, dict) or set(p) != {"name", "regex"}:
            problems.append(f"pattern {i} must have exactly a name and a regex")
            continue
        problems += [f"pattern {i}: {m}" for m in pattern_problems(p["name"], p["regex"])]
        if p["name"] in names:
            problems.append(f"pattern {i}: the name {p['name']} is used twice")
        names.add(p["name"])
    return problems


def pattern_problems(name: Any, regex: Any) -> list[str]:
    """What is wrong with one custom pattern: its name (placeholder `[NAME_1]`) and regex."""
    problems = []
    if not isinstance(name, str) or not PATTERN_NAME.match(name):
        problems.append(
            "the name must be capital letters and underscores (A-Z, _), at most 32, "
            "starting with a letter"
        )
    elif name in _RESERVED_NAMES:
        problems.append(f"the name {name} is a built-in type")
    if not isinstance(regex, str) or not regex:
        return [*problems, "the regex is required"]
    if len(regex) > MAX_PATTERN_LENGTH:
        return [*problems, f"the regex is longer than {MAX_PATTERN_LENGTH} characters"]
    try:
        compiled = re.compile(regex)
    except re.error as exc:
        return [*problems, f"the regex does not compile: {exc}"]
    if any(m.end() == m.start() for m in compiled.finditer("a 1 -\n")) or compiled.match(""):
        problems.append("the regex matches empty text; it must match at least one character")
    return problems


# --- placeholders --------------------------------------------------------------------------


def label(kind: str) -> str:
    """The placeholder's name for a kind: EMAIL for email, a custom pattern's own name."""
    return kind.upper() if kind in BUILTIN_KINDS else kind


def placeholder(kind: str, number: int) -> str:
    return f"[{label(kind)}_{number}]"


def value_digest(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised value: the mapping's key, so equal values meet without
    the original being kept (a plain hash of a phone number is brute-forced in seconds)."""
    return hmac.new(key, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()


@dataclass(slots=True)
class MappedValue:
    """One row of a conversation's mapping (`agents.RedactedValue`)."""

    kind: str
    number: int
    digest: str
    original: str | None


@dataclass
class ConversationMap:
    """The placeholders of one conversation: those stored (`load`) and those made since
    (`fresh`, to be stored with the interactions that use them)."""

    by_digest: dict[str, MappedValue] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)  # the highest number per kind
    fresh: dict[str, MappedValue] = field(default_factory=dict)

    @classmethod
    def load(cls, rows: Iterable[tuple[str, int, str]]) -> ConversationMap:
        """From stored (kind, number, digest) rows."""
        mapping = cls()
        for kind, number, digest in rows:
            mapping.by_digest[digest] = MappedValue(kind, number, digest, None)
            mapping.last[kind] = max(mapping.last.get(kind, 0), number)
        return mapping

    def get(self, kind: str, digest: str, original: str | None) -> MappedValue:
        mapped = self.by_digest.get(digest)
        if mapped is None:
            number = self.last[kind] = self.last.get(kind, 0) + 1
            mapped = self.by_digest[digest] = MappedValue(kind, number, digest, original)
            self.fresh[digest] = mapped
        return mapped


@dataclass
class Redacted:
    """What redacting one interaction (or one correction) did: occurrences per kind and the
    fresh mapping rows its texts use."""

    counts: dict[str, int] = field(default_factory=dict)
    fresh: dict[str, MappedValue] = field(default_factory=dict)


class Redactor:
    """A policy with the HMAC key, applied to texts against a conversation's map."""

    def __init__(self, policy: RedactionPolicy, key: bytes) -> None:
        self.policy, self.key = policy, key

    def text(self, text: str, mapping: ConversationMap, out: Redacted) -> str:
        if not text:
            return text
        findings = self.policy.find(text)
        if not findings:
            return text
        keep = self.policy.keep_originals
        parts: list[str] = []
        at = 0
        for f in findings:
            digest = value_digest(self.key, f.kind, f.value)
            mapped = mapping.get(f.kind, digest, text[f.start : f.end] if keep else None)
            if digest in mapping.fresh:
                out.fresh[digest] = mapped
            out.counts[f.kind] = out.counts.get(f.kind, 0) + 1
            parts += (text[at : f.start], placeholder(mapped.kind, mapped.number))
            at = f.end
        parts.append(text[at:])
        return "".join(parts)

    def json_text(self, encoded: str, mapping: ConversationMap, out: Redacted) -> str:
        """JSON text (a message list, metadata) with every string value redacted (tool call
        arguments are strings too); keys are left as they are."""
        if encoded in ("[]", "{}", ""):
            return encoded
        before = sum(out.counts.values())
        redacted = self._walk(orjson.loads(encoded), mapping, out)
        return orjson.dumps(redacted).decode() if sum(out.counts.values()) > before else encoded

    def _walk(self, value: Any, mapping: ConversationMap, out: Redacted) -> Any:
        if isinstance(value, str):
            return self._string(value, mapping, out)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1_000_000:
            # A phone or card number sent as a bare JSON number (tool call arguments): its
            # placeholder becomes a string, so the JSON stays valid.
            digits = str(value)
            redacted = self.text(digits, mapping, out)
            return value if redacted == digits else redacted
        if isinstance(value, list):
            return [self._walk(v, mapping, out) for v in value]
        if isinstance(value, dict):
            return {k: self._walk(v, mapping, out) for k, v in value.items()}
        return value

    def _string(self, value: str, mapping: ConversationMap, out: Redacted) -> str:
        """A string value; one holding JSON (a tool call's arguments are JSON text) is
        redacted value by value and encoded again, so it stays valid JSON."""
        if value[:1] in ("{", "[") and value[-1:] in ("}", "]"):
            try:
                decoded = orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
            else:
                before = sum(out.counts.values())
                redacted = self._walk(decoded, mapping, out)
                if sum(out.counts.values()) == before:
                    return value
                return orjson.dumps(redacted).decode()
        return self.text(value, mapping, out)

    def record(self, rec: dict, mapping: ConversationMap) -> Redacted:
        """Redacts a validated ingest record in place (`input`, `output`, and the JSON text
        of `context`, `steps` and `metadata`), numbering in conversation order: the turns
        before, the input, the tool steps, the output, then the metadata."""
        out = Redacted()
        rec["context"] = self.json_text(rec["context"], mapping, out)
        rec["input"] = self.text(rec["input"], mapping, out)
        rec["steps"] = self.json_text(rec["steps"], mapping, out)
        rec["output"] = self.text(rec["output"], mapping, out)
        rec["metadata"] = self.json_text(rec["metadata"], mapping, out)
        return out


def conversation_key(conversation_id: str, external_id: str) -> str:
    """The scope of placeholders: the conversation, or the interaction alone when it names
    none (prefixed, so a conversation id never meets an external id)."""
    return f"c:{conversation_id}" if conversation_id else f"i:{external_id}"
