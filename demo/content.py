"""What the demo is about, shared by its text banks: the three agents with their review
policies and reviewer guidelines, the shapes of a chat agent's question bank (`Topic`,
`Case`) and the slot values its templates are filled with.

Pure data: no randomness, no database. The banks per agent live next to this module
(`content_support`, `content_legal`, `content_catalog`), the untrusted texts every demo has in
`content_specials`; `demo.plan` makes the random choices among them and `demo.seed` writes
the policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.models import Agent

# --- Agents and their review policy -----------------------------------------------------------

SUPPORT_GUIDELINES = """\
## Reviewing support-bot

Customers of **Northwind Outdoor & Home** ask about orders, returns, billing and accounts.

**Approve** when the answer is correct *for our policies* and the customer can act on it:

- Returns: 30 days from delivery, unused; free return label on orders over €50.
- Refunds go to the original payment method within 5 business days of check-in.
- Standard delivery 2–4 business days; express next business day if ordered before 14:00.
- Never ask for a full card number, a password or a one-time code.

**Correct** when the facts are wrong, a step is missing or the tone is off. Write the answer
you would send. **Reject** answers that should never reach a customer (made-up policies,
promises of compensation we do not offer). Anything that sounds like a legal claim goes to the
*legal* queue: use **Escalate**.
"""

LEGAL_GUIDELINES = """\
## Reviewing legal-bot (four-eyes)

legal-bot answers questions from Northwind staff about contracts, tenancy, data protection
and employment. Every item needs **two agreeing reviewers**; disagreements go to the lead.

1. The answer must state the **jurisdiction** it assumes (see the `jurisdiction` metadata).
2. It gives *general information*: it must not tell someone what to sign or to terminate.
3. Deadlines and thresholds must be exact (GDPR Art. 12(3): one month; Art. 33: 72 hours).
4. It ends with the disclaimer and points to the legal team for a decision.

| error category | use when |
| --- | --- |
| Policy / legal risk | advice that could create liability if followed |
| Factual error | a wrong deadline, amount or article |
| Hallucination | an invented statute, case or clause |

Contract terminations (`contract_termination`) are always reviewed, whatever the confidence.
"""

RECOMMENDER_GUIDELINES = """\
## Reviewing product-recommender

Each item shows what the shopper was doing and the products recommended (by product id).

- **Approve** when every product fits the context (complements or close alternatives).
- **Correct** with the list you would show, one `P-…` id per line, best first.
- Flag irrelevant items (a stroller next to hiking boots) as *Wrong intent*, products that do
  not exist as *Hallucination*.
"""

AGENT_POLICIES: tuple[dict[str, Any], ...] = (
    {
        "slug": "support-bot",
        "name": "Support bot",
        "kind": Agent.Kind.CHAT,
        "domain": "support",
        "confidence_threshold": 0.7,
        "audit_rate": 0.03,
        "required_reviews": 1,
        "review_intents": [],
        # Whatever the support bot tags `legal` (a customer threatening to sue) is reviewed
        # by the legal pool, whatever its confidence.
        "review_domains": ["legal"],
        "guidelines": SUPPORT_GUIDELINES,
        "alert_thresholds": {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}},
        # Customers write their addresses and numbers in: reviewers see placeholders, admins
        # may reveal the originals (agents/redaction.py).
        "redaction": {
            "types": ["email", "phone", "iban", "card"],
            "keep_originals": True,
            "regions": ["GB", "DE", "FR", "ES", "US"],
        },
    },
    {
        "slug": "legal-bot",
        "name": "Legal assistant",
        "kind": Agent.Kind.CHAT,
        "domain": "legal",
        "confidence_threshold": 0.8,
        "audit_rate": 0.05,
        "required_reviews": 2,
        "review_intents": ["contract_termination"],
        "review_domains": [],
        "guidelines": LEGAL_GUIDELINES,
        "alert_thresholds": {"resolution_rate": {"below": 0.6, "days": 7, "min_n": 30}},
    },
    {
        "slug": "product-recommender",
        "name": "Product recommender",
        "kind": Agent.Kind.RECOMMENDER,
        "domain": "product",
        "confidence_threshold": 0.6,
        "audit_rate": 0.02,
        "required_reviews": 1,
        "review_intents": [],
        "review_domains": [],
        "guidelines": RECOMMENDER_GUIDELINES,
        "alert_thresholds": {},
    },
)
AGENT_SLUGS = tuple(p["slug"] for p in AGENT_POLICIES)
TRAFFIC_SHARE = (0.5, 0.22, 0.28)  # of the interactions, in AGENT_SLUGS order


# --- Question banks and slot values -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One question, in a few phrasings, with a good answer and a weak one to it."""

    questions: tuple[str, ...]
    answer: str
    weak: str


@dataclass(frozen=True)
class Topic:
    """One kind of question a chat agent gets (its intent)."""

    intent: str
    weight: float
    cases: tuple[Case, ...]
    domain: str = ""  # "" means the agent's domain
    tool: str = ""  # a lookup the agent made, shown as a `tool` turn in the context


# Filled into the `{carrier}`, `{country}`, `{weekday}` and `{vendor}` slots of the banks.
CARRIERS = ("DHL", "UPS", "DPD", "GLS", "PostNL")
COUNTRIES = ("Norway", "Switzerland", "Canada", "Ireland", "Poland", "Portugal")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
VENDORS = ("Acme Cloud", "Brightline Logistics", "Nordhaus IT", "Vela Facilities")
# The opening line of a chat that starts with small talk.
GREETINGS = ("Hi", "Hello there", "hey, quick question", "Good morning", "Hi, can you help?")
