"""What the demo's reviewers write: the error categories a weak answer of each intent earns,
the notes beside their verdicts, and the words of the review lead's adjudications. Pure
data; `demo.reviewing` chooses among them. Category slugs are those of the default taxonomy
(`reviews.defaults.CATEGORIES`).
"""

from __future__ import annotations

# intent → (category slug, weight) of what is wrong with its weak answers. Reviewers agree
# on the verdict more often than on the category, as in real queues.
CATEGORIES_BY_INTENT: dict[str, tuple[tuple[str, int], ...]] = {
    # support-bot
    "returns": (("factual-error", 6), ("incomplete", 3), ("policy-legal-risk", 1)),
    "shipping_status": (("incomplete", 5), ("factual-error", 3), ("hallucination", 2)),
    "billing": (("factual-error", 5), ("policy-legal-risk", 3), ("incomplete", 2)),
    "password_reset": (("policy-legal-risk", 6), ("factual-error", 3), ("other", 1)),
    "cancel_subscription": (("factual-error", 5), ("incomplete", 4), ("tone", 1)),
    "damaged_item": (("incomplete", 5), ("tone", 3), ("factual-error", 2)),
    "legal_complaint": (("policy-legal-risk", 7), ("tone", 3)),
    # legal-bot
    "nda_review": (("policy-legal-risk", 7), ("incomplete", 3)),
    "tenancy": (("factual-error", 6), ("policy-legal-risk", 3), ("hallucination", 1)),
    "gdpr": (("factual-error", 6), ("hallucination", 2), ("policy-legal-risk", 2)),
    "employment": (("policy-legal-risk", 5), ("factual-error", 4), ("hallucination", 1)),
    "contract_termination": (("policy-legal-risk", 7), ("factual-error", 3)),
    # product-recommender
    "cross_sell": (("wrong-intent", 8), ("other", 1)),
    "cart_addon": (("wrong-intent", 8), ("formatting", 1)),
    "personalised_home": (("wrong-intent", 7), ("other", 2)),
    "similar_items": (("wrong-intent", 8), ("hallucination", 1)),
}
DEFAULT_CATEGORIES = (("other", 1),)

# What reviewers note when they correct, reject or escalate, by error category.
NOTES: dict[str, tuple[str, ...]] = {
    "factual-error": (
        "The policy figure is wrong; fixed it against the guidelines.",
        "Wrong deadline. Checked the rule and rewrote the answer.",
        "States the opposite of our policy.",
        "Numbers do not match the help centre article.",
    ),
    "incomplete": (
        "Leaves out the next step the customer needs.",
        "Correct as far as it goes, but the customer cannot act on it.",
        "Missing the condition that decides the case.",
    ),
    "policy-legal-risk": (
        "Tells the user what to do instead of giving general information.",
        "This could create liability if someone followed it.",
        "Asks for data we must never ask for.",
        "No jurisdiction stated and the advice is absolute.",
    ),
    "hallucination": (
        "Cites a rule that does not exist.",
        "Invented a reference; nothing like it in the sources.",
        "States a promise we never made.",
    ),
    "tone": (
        "Right content, but curt for an upset customer.",
        "Too dismissive; softened the wording.",
    ),
    "wrong-intent": (
        "One recommendation has nothing to do with what the shopper is looking at.",
        "Replaced the item from another category with a real complement.",
        "A stroller next to trail shoes: swapped it for something that fits.",
    ),
    "formatting": ("List is hard to scan; one product per line.",),
    "other": ("Not right for this shopper; see the edit.", "Odd answer, see my edit."),
}
APPROVE_NOTES = (
    "Accurate and cites the rule.",
    "Matches the guidelines.",
    "Good answer.",
    "Checked against the policy page: correct.",
    "Fine, every product fits.",
)
SKIP_NOTES = (
    "Outside what I know well; leaving it for a colleague.",
    "Need the order history to judge this one.",
)
ESCALATE_NOTES = (
    "Needs a lead: the answer may commit us to something.",
    "Unsure whether this is advice or information; escalating.",
    "The customer mentions court; a lead should look at it.",
)
# A support answer that is sound but curt gets a friendlier opening (a "tone" correction).
TONE_OPENERS = (
    "Thanks for getting in touch, and sorry for the trouble. ",
    "Happy to help with that. ",
)
ADJUDICATION_NOTES = {
    "approve": ("Lead decision: the answer is sound; approving.",),
    "correct": (
        "Lead decision: corrected version below is what we want the agent to say.",
        "Lead decision: the second reviewer was right; using the corrected answer.",
    ),
    "reject": ("Lead decision: not fit to send; rejecting.",),
}
