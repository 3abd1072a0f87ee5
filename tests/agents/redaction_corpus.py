"""A deterministic corpus of messages for the redaction tests: several languages and
formats, with planted personal data (checksums computed here, phone numbers made from
phonenumbers' example numbers) and near-misses that must stay.

`corpus()` gives messages with the spans of what was planted; nothing here calls the code
under test.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

SEED = 20261203
N_EACH = 220  # planted values per kind (at least 200)
POLICY = {
    "types": ["email", "phone", "iban", "card"],
    "patterns": [{"name": "CASE_ID", "regex": r"CASE-[0-9]{6}\b"}],
    "keep_originals": True,
    "regions": ["GB", "DE", "FR", "ES", "IT", "NL", "US"],
}
KINDS = ("email", "phone", "iban", "card", "CASE_ID")


@dataclass
class Message:
    text: str = ""
    planted: list[tuple[int, int, str, str]] = field(default_factory=list)  # start, end, kind, raw
    language: str = ""
    form: str = ""

    def add(self, text: str) -> None:
        self.text += text

    def plant(self, kind: str, raw: str) -> None:
        self.planted.append((len(self.text), len(self.text) + len(raw), kind, raw))
        self.text += raw


# --- values --------------------------------------------------------------------------------

FIRST = [
    "jan",
    "anna",
    "jose",
    "marie",
    "luca",
    "sofia",
    "pieter",
    "élodie",
    "jürgen",
    "zoë",
    "li",
    "o.brien",
    "ana-maria",
    "mark",
    "giulia",
    "noah",
]
LAST = [
    "devries",
    "mueller",
    "garcia",
    "dupont",
    "rossi",
    "smith",
    "jansen",
    "martin",
    "fernández",
    "bianchi",
    "schmidt",
    "lefèvre",
]
DOMAINS = [
    "example.com",
    "mail.example.de",
    "correo.es",
    "posteo.de",
    "kpn-mail.nl",
    "libero.it",
    "orange.fr",
    "outlook.co.uk",
    "sub.dept.example.org",
    "müller-bau.de",
    "firma.example.ch",
    "uni.example.edu",
]


def emails(rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < N_EACH:
        first, last, domain = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
        shape = rng.randrange(6)
        if shape == 0:
            local = f"{first}.{last}"
        elif shape == 1:
            local = f"{first}{rng.randrange(10, 99)}"
        elif shape == 2:
            local = f"{first}+{rng.choice(['orders', 'news', 'x'])}"
        elif shape == 3:
            local = f"{first[0]}.{last}"
        elif shape == 4:
            local = f"{first}_{last}"
        else:
            local = f"{last}.{first}".upper()
        out.add(f"{local}@{domain}")
    return sorted(out)


NATIONAL_REGIONS = ["GB", "DE", "FR", "ES", "IT", "NL", "US"]
FOREIGN_REGIONS = ["CH", "SE", "AU", "JP", "BR", "PL", "IE", "AT", "BE", "DK"]


def phones(rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < N_EACH:
        foreign = rng.random() < 0.25
        region = rng.choice(FOREIGN_REGIONS if foreign else NATIONAL_REGIONS)
        kind = rng.choice([PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE])
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        digits = str(example.national_number)
        tail = "".join(rng.choice(string.digits) for _ in range(3))
        number = phonenumbers.parse(f"+{example.country_code}{digits[:-3]}{tail}")
        if not phonenumbers.is_valid_number(number):
            continue
        if foreign:
            fmt = rng.choice([PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164])
        else:
            fmt = rng.choice(
                [
                    PhoneNumberFormat.INTERNATIONAL,
                    PhoneNumberFormat.NATIONAL,
                    PhoneNumberFormat.E164,
                ]
            )
        out.add(phonenumbers.format_number(number, fmt))
    return sorted(out)


IBAN_FORMATS = {  # country: BBAN as (a=letter, n=digit, c=alnum) with counts
    "DE": "n18",
    "GB": "a4 n14",
    "FR": "n10 c11 n2",
    "ES": "n20",
    "NL": "a4 n10",
    "IT": "a1 n10 c12",
    "BE": "n12",
    "AT": "n16",
    "CH": "n5 c12",
    "PL": "n24",
}


def _bban(rng: random.Random, fmt: str) -> str:
    out = ""
    for part in fmt.split():
        pool = {
            "a": string.ascii_uppercase,
            "n": string.digits,
            "c": string.ascii_uppercase + string.digits,
        }[part[0]]
        out += "".join(rng.choice(pool) for _ in range(int(part[1:])))
    return out


def iban_check(country: str, bban: str) -> str:
    """The two check digits of ISO 13616 (mod 97-10), worked out here."""
    moved = bban + country + "00"
    number = int("".join(str(int(ch, 36)) for ch in moved))
    return f"{98 - number % 97:02d}"


def ibans(rng: random.Random, *, valid_only: bool = True) -> list[str]:
    from stdnum import iban as stdnum_iban  # the ground truth's own check (national rules)

    out: set[str] = set()
    while len(out) < N_EACH:
        country = rng.choice(sorted(IBAN_FORMATS))
        bban = _bban(rng, IBAN_FORMATS[country])
        compact = country + iban_check(country, bban) + bban
        if valid_only and not stdnum_iban.is_valid(compact):
            continue  # a national check (e.g. Spain's, Italy's) the random BBAN fails
        if rng.random() < 0.6:
            out.add(" ".join(compact[i : i + 4] for i in range(0, len(compact), 4)))
        else:
            out.add(compact)
    return sorted(out)


CARD_PREFIXES = [
    ("4", 16),
    ("4", 13),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("65", 16),
    ("3530", 16),
    ("36", 14),
    ("4", 19),
]


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass Luhn, worked out here."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _card_format(rng: random.Random, digits: str) -> str:
    shape = rng.randrange(3)
    if shape == 0:
        return digits
    sep = " " if shape == 1 else "-"
    if len(digits) == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4))


def cards(rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < N_EACH:
        prefix, length = rng.choice(CARD_PREFIXES)
        body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        out.add(_card_format(rng, body + luhn_digit(body)))
    return sorted(out)


def case_ids(rng: random.Random) -> list[str]:
    return sorted({f"CASE-{rng.randrange(100000, 999999)}" for _ in range(N_EACH * 2)})[:N_EACH]


# --- near-misses (must stay) ---------------------------------------------------------------


def near_misses(rng: random.Random) -> list[str]:
    out = []
    for _ in range(60):
        # A bad checksum: a valid IBAN with its last digit changed.
        good = rng.choice(ibans(random.Random(rng.random()))).replace(" ", "")
        last = good[-1]
        bad = good[:-1] + (str((int(last) + 1) % 10) if last.isdigit() else "0")
        out.append(" ".join(bad[i : i + 4] for i in range(0, len(bad), 4)))
    for _ in range(60):
        prefix, length = rng.choice(CARD_PREFIXES)
        body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
        wrong = str((int(luhn_digit(body)) + rng.randrange(1, 10)) % 10)
        out.append(_card_format(rng, body + wrong))
    for _ in range(40):
        # Luhn-valid but no card issuer uses the prefix (or not at that length).
        body = rng.choice(["1", "7", "8", "9"]) + "".join(
            rng.choice(string.digits) for _ in range(14)
        )
        out.append(body + luhn_digit(body))
    fixed = [
        "user@localhost",
        "admin@intranet",
        "root@server1",
        "logo@2x.png",
        "icon@3x.jpg",
        "pkg@1.2.3",
        "@channel",
        "react@18.2.0",
        "name at example dot com",
        "foo@",
        "@bar.com",
        "v2.14.3",
        "1.2.3.4",
        "release 2024.11.2",
        "2024-03-15",
        "15.03.2024",
        "03/15/2024",
        "10:15:00",
        "2026-11-20T10:15:00Z",
        "€1,299.00",
        "$12,345.67",
        "1.234.567,89 €",
        "CHF 2'500.-",
        "Order #100234",
        "ORD-2024-00017",
        "order number 448812",
        "PO 77812",
        "ISBN 978-3-16-148410-0",
        "ISBN 9780306406157",
        "978-0-306-40615-7",
        "1Z999AA10123456784",
        "9400 1000 0000 0000 0000 00",
        "JJD000390007880000",
        "CASE-12345",
        "case-123456",
        "CASE-1234567",
        "192.168.1.10",
        "10.0.0.255",
        "550e8400-e29b-41d4-a716-446655440000",
        "SKU 4006381333931",
        "EAN 5901234123457",
        "42",
        "123",
        "4567",
        "12 34",
        "tel. ext. 204",
        "room 3.14",
        "+1",
        "page 2 of 10",
        "batch 20261120-0001",
        "2026 11 20",
        "0,5 l",
        "Zimmer 12",
    ]
    out += fixed * 3
    return out


# --- messages ------------------------------------------------------------------------------

LANGS = {
    "en": ("Hello, please reach me at", "Thanks, regards", "Payment details", "my number is"),
    "de": ("Hallo, Sie erreichen mich unter", "Viele Grüße", "Bankverbindung", "meine Nummer ist"),
    "fr": (
        "Bonjour, vous pouvez me joindre à",
        "Cordialement",
        "Coordonnées bancaires",
        "mon numéro est",
    ),
    "es": ("Hola, puede contactarme en", "Saludos", "Datos de pago", "mi número es"),
    "nl": (
        "Hallo, u kunt mij bereiken op",
        "Met vriendelijke groet",
        "Betaalgegevens",
        "mijn nummer is",
    ),
    "it": (
        "Buongiorno, potete contattarmi a",
        "Cordiali saluti",
        "Dati di pagamento",
        "il mio numero è",
    ),
}
FORMS = ("plain", "json", "csv", "markdown", "signature", "html")


def _piece(msg: Message, kind: str, value: str, form: str, words: tuple[str, ...]) -> None:
    """One planted value in the message's format."""
    if form == "plain":
        msg.add(f"{words[0] if kind == 'email' else words[3]} ")
        msg.plant(kind, value)
        msg.add(". ")
    elif form == "json":
        msg.add(f'{{"field": "{kind}", "value": "')
        msg.plant(kind, value)
        msg.add('"} ')
    elif form == "csv":
        msg.add(f"{kind};")
        msg.plant(kind, value)
        msg.add(";ok\n")
    elif form == "markdown":
        if kind == "email":
            msg.add("- **Mail:** [")
            msg.plant(kind, value)
            msg.add("](mailto:")
            msg.plant(kind, value)
            msg.add(")\n")
        else:
            msg.add(f"- **{kind}:** `")
            msg.plant(kind, value)
            msg.add("`\n")
    elif form == "signature":
        msg.add(f"\n-- \n{words[1]},\nA. Person\n{kind.title()}: ")
        msg.plant(kind, value)
        msg.add("\n")
    else:  # html
        msg.add(f'<p>{words[2]}: <span class="{kind}">')
        msg.plant(kind, value)
        msg.add("</span></p>")


def corpus(seed: int = SEED) -> list[Message]:
    rng = random.Random(seed)
    values = [
        *(("email", v) for v in emails(rng)),
        *(("phone", v) for v in phones(rng)),
        *(("iban", v) for v in ibans(rng)),
        *(("card", v) for v in cards(rng)),
        *(("CASE_ID", v) for v in case_ids(rng)),
    ]
    misses = near_misses(rng)
    rng.shuffle(values)
    rng.shuffle(misses)
    messages: list[Message] = []
    languages = sorted(LANGS)
    i = 0
    while values:
        lang, form = languages[i % len(languages)], FORMS[(i // len(languages)) % len(FORMS)]
        i += 1
        msg = Message(language=lang, form=form)
        words = LANGS[lang]
        msg.add(f"{words[0].split(',')[0]}! ")
        for _ in range(rng.randrange(1, 4)):
            if not values:
                break
            kind, value = values.pop()
            _piece(msg, kind, value, form, words)
            if misses:
                msg.add(f" ({misses.pop()}) ")
        msg.add(f" {words[1]}.")
        messages.append(msg)
    # Messages of near-misses only, every one of them somewhere.
    while misses:
        msg = Message(language="en", form="plain")
        msg.add("Ref: " + " | ".join(misses.pop() for _ in range(min(5, len(misses)))) + ".")
        messages.append(msg)
    return messages


def as_json_args(msg: Message) -> str:
    """The message as a tool call's arguments (JSON text), for the ingest tests."""
    return json.dumps({"query": msg.text}, ensure_ascii=False)
