"""legal-bot's texts: its system prompt, greeting and disclaimer, and its question bank
(what Northwind staff ask about contracts, tenancy, data protection and employment, with a
sound answer that states its jurisdiction and a weak one). Pure data.
"""

from __future__ import annotations

from demo.content import Case, Topic

LEGAL_SYSTEM = (
    "You are LegalAssist, an internal assistant for Northwind staff. Give general information, "
    "state the jurisdiction you assume and cite the rule. Never give a decision."
)
LEGAL_HELLO = "Hello, what would you like to know?"
DISCLAIMER = "\n\n_General information, not legal advice. For a decision, ask the legal team._"

LEGAL_TOPICS = (
    Topic(
        "nda_review",
        0.2,
        (
            Case(
                (
                    "A supplier wants us to sign their one-way NDA. What should we check?",
                    "Does our mutual NDA cover information that was only shared verbally?",
                ),
                "Check four things: (1) the definition of *confidential information* — verbal "
                "disclosures are usually covered only if confirmed in writing within a set "
                "period; (2) the term and how long obligations survive; (3) the carve-outs "
                "(public, already known, independently developed); (4) governing law and venue. "
                "A one-way NDA protects only the supplier, so ask for a mutual one if we "
                "disclose too.",
                "NDAs are standard documents; you can sign them without reading.",
            ),
            Case(
                ("Is a 5-year non-compete clause for a departing employee enforceable?",),
                "Assuming German law: post-contractual non-competes for employees are limited "
                "to two years and require compensation of at least half the last pay "
                "(§ 74 HGB). A 5-year clause, or one without compensation, is not binding on "
                "the employee.",
                "Yes, any non-compete is enforceable as long as it is signed in writing.",
            ),
        ),
    ),
    Topic(
        "tenancy",
        0.2,
        (
            Case(
                (
                    "My landlord is keeping my whole €{deposit} deposit for 'wear and tear'. "
                    "Is that allowed?",
                ),
                "Assuming German law: normal wear and tear from ordinary use is covered by the "
                "rent and may not be deducted from the deposit. The landlord may keep back only "
                "what covers real damage or open claims, and must account for it within a "
                "reasonable time (typically up to six months). The deposit itself may not "
                "exceed three months' net rent (§ 551 BGB).",
                "Landlords can always keep the deposit if the flat is not freshly painted.",
            ),
            Case(
                ("How much notice do I have to give to end my tenancy?",),
                "Assuming German law: a tenant can end an open-ended lease with three months' "
                "notice (§ 573c BGB), given in writing by the third working day of a month.",
                "You need to give twelve months' notice.",
            ),
            Case(
                ("Can my landlord raise the rent in the middle of a fixed-term lease?",),
                "Assuming the UK (England): during a fixed term the rent can only rise if the "
                "tenancy agreement has a rent review clause or the tenant agrees.",
                "Yes, landlords can raise the rent whenever they like.",
            ),
        ),
    ),
    Topic(
        "gdpr",
        0.22,
        (
            Case(
                ("A customer asked for all data we hold on them. How long do we have?",),
                "Under GDPR Art. 12(3) we must answer a subject access request without undue "
                "delay and within **one month**; for complex or numerous requests this can be "
                "extended by two further months if we tell the customer within the first month.",
                "You have 90 days to respond to a data access request.",
            ),
            Case(
                ("Do we need consent to send our newsletter to existing customers?",),
                "Not always: existing customers may receive marketing for *similar* products "
                "without consent (soft opt-in), provided they were told at collection and can "
                "opt out in every message. For anything else we need consent.",
                "No, once someone is a customer we can email them anything.",
            ),
            Case(
                ("We had a data breach affecting {people} customers. Do we need to report it?",),
                "Yes, unless the breach is unlikely to result in a risk to people's rights. "
                "Under the GDPR the supervisory authority must be notified within **72 hours** "
                "of becoming aware (Art. 33); if the risk is high, the customers must be told "
                "too (Art. 34). Start the breach log now.",
                "Breaches only need reporting if more than 1,000 people are affected.",
            ),
        ),
    ),
    Topic(
        "employment",
        0.2,
        (
            Case(
                ("Can the company change an employee's working hours without their agreement?",),
                "Assuming German law: only within what the contract allows. If the contract "
                "fixes the hours, changing them needs the employee's agreement or, failing that, "
                "a notice of change (*Änderungskündigung*) subject to dismissal protection.",
                "Employers can change working hours whenever they like.",
            ),
            Case(
                ("How much notice must we give to dismiss someone after {years} years?",),
                "Assuming German law: the employer's statutory notice grows with service "
                "(§ 622 BGB) — one month to the end of a calendar month after 2 years, two "
                "months after 5, three after 8. The contract or a collective agreement may set "
                "more.",
                "Two weeks' notice is always enough.",
            ),
        ),
    ),
    Topic(
        "contract_termination",
        0.18,
        (
            Case(
                (
                    "We want to terminate our contract with {vendor} early. What are our options?",
                    "How do we terminate a contract with a {notice}-day notice clause?",
                ),
                "First read the termination clause: whether there is termination for "
                "convenience, the notice period and the form (often written, signed). Without a "
                "convenience right, early termination needs cause: a material breach, usually "
                "after a written notice to cure. Under German law a continuing contract can "
                "also be ended for good cause (§ 314 BGB).",
                "You can terminate any contract immediately by email.",
            ),
            Case(
                ("{vendor} hasn't delivered for two months. Can we terminate for breach?",),
                "Possibly. Document the missed deliveries, send {vendor} a formal notice setting "
                "a reasonable deadline to perform, and check whether the contract defines a "
                "*material breach* and a cure period. Terminating without following that "
                "process risks a claim against us.",
                "Just stop paying them; the contract ends automatically.",
            ),
        ),
    ),
)
