"""support-bot's texts: its system prompt and greeting, the vague openers customers start
with, and its question bank (what customers of Northwind Outdoor & Home ask, with the answer
the guidelines want and a weak one reviewers should catch). Pure data.
"""

from __future__ import annotations

from demo.content import Case, Topic

SUPPORT_SYSTEM = (
    "You are the customer support assistant of Northwind Outdoor & Home. Be brief and "
    "friendly, follow the policies, never ask for passwords or card numbers."
)
SUPPORT_HELLO = "Hi! I'm the Northwind assistant. What can I help you with?"
# The first message of a customer who has not yet said what is wrong, per intent.
VAGUE = {
    "returns": "I want to return something",
    "shipping_status": "my order still isn't here",
    "billing": "there's something wrong with a payment",
    "password_reset": "I can't log in",
    "cancel_subscription": "I want to stop my membership",
    "damaged_item": "there's a problem with what I received",
    "legal_complaint": "I'm really not happy with you",
}

SUPPORT_TOPICS = (
    Topic(
        "returns",
        0.24,
        (
            Case(
                (
                    "How do I return the {product} I bought last week?",
                    "i want to send back order {order}, how??",
                    "The {product} doesn't fit. How do I send it back?",
                ),
                "You can return unused items within 30 days of delivery. Go to **Orders → "
                "{order} → Return item**, pick a reason and print the prepaid label. The refund "
                "goes to your original payment method within 5 business days of the parcel "
                "reaching us.",
                "I think returns are possible in most cases. You could try contacting the shop.",
            ),
            Case(
                (
                    "Can I still return my {product}? It was delivered {days} days ago.",
                    "Is it too late to return {order}? It arrived {days} days ago.",
                ),
                "You're still within the 30-day return window. Start the return under "
                "*Orders* in your account and drop the parcel at any {carrier} point; we refund "
                "you once it's checked in (usually 3–5 business days).",
                "Returns are only accepted within 14 days, so unfortunately it's too late.",
            ),
            Case(
                ("Do I have to pay for return shipping on order {order}?",),
                "Return shipping is free for orders over €50 — use the prepaid label from "
                "**Orders → {order} → Return item**. Below €50 we deduct €4.95 from the refund.",
                "Yes, customers always pay for return shipping.",
            ),
        ),
    ),
    Topic(
        "shipping_status",
        0.22,
        (
            Case(
                (
                    "Where is my order {order}? It was supposed to arrive on {weekday}.",
                    "Tracking for {order} hasn't moved in three days.",
                ),
                "Order {order} is with {carrier}; the last scan shows it at the regional depot "
                "and it's now due on {weekday}. The tracking link is in your shipping "
                "confirmation email. If it hasn't arrived by then, reply here and we'll send a "
                "replacement.",
                "Your order has been delivered.",
            ),
            Case(
                ("Can you ship to {country}?", "Do you deliver to {country}, and how long?"),
                "Yes, we ship to {country} with {carrier} in 4–7 business days. Duties and "
                "taxes are shown at checkout, so there are no surprises on delivery.",
                "We only ship within the EU.",
            ),
            Case(
                ("How long does express delivery take?", "If I order now, when will it arrive?"),
                "Standard delivery takes 2–4 business days. Express arrives the next business "
                "day if you order before 14:00.",
                "Delivery times vary. Please wait a few weeks before contacting us.",
            ),
        ),
        tool='{{"order": "{order}", "status": "in_transit", "carrier": "{carrier}", '
        '"eta": "{weekday}"}}',
    ),
    Topic(
        "billing",
        0.18,
        (
            Case(
                (
                    "I was charged twice for order {order}.",
                    "Why are there two charges of €{amount} on my card from you?",
                ),
                "Sorry about that! I can see two payments of €{amount} for {order}. The second is "
                "a pre-authorisation that your bank releases automatically within 5 business "
                "days; you won't be charged twice.",
                "Please send me your full card number and expiry date so I can check the charge.",
            ),
            Case(
                ("Can I get an invoice with my company's VAT number on it?",),
                "You can add your VAT number under **Account → Billing details**; every invoice "
                "issued after that shows it. For {order}, I've requested a corrected invoice — "
                "it arrives by email within 24 hours.",
                "Invoices cannot be changed once issued.",
            ),
            Case(
                ("How do I update the credit card on my account?",),
                "Go to **Account → Payment methods**, choose *Add card*, then make it the "
                "default. For your security, please never send card numbers in this chat.",
                "Just type the new card number here and I'll update it for you.",
            ),
        ),
        tool='{{"order": "{order}", "payments": [{{"amount": {amount}, "state": "captured"}}, '
        '{{"amount": {amount}, "state": "authorised"}}]}}',
    ),
    Topic(
        "password_reset",
        0.14,
        (
            Case(
                (
                    "I forgot my password and the reset email never arrives.",
                    "The password reset link says it has expired.",
                ),
                "Reset links are valid for 30 minutes. Request a new one from the login page and "
                "check your spam folder for mail from no-reply@northwind.example. If nothing "
                "arrives within 10 minutes, reply here and I'll hand you to a colleague.",
                "Tell me your current password and I'll reset it for you.",
            ),
            Case(
                ("I'm locked out after too many login attempts.",),
                "After five failed attempts your account is locked for 15 minutes. After that, "
                "use *Forgot password* on the login page to set a new one.",
                "Try again later.",
            ),
        ),
    ),
    Topic(
        "cancel_subscription",
        0.1,
        (
            Case(
                (
                    "How do I cancel my {plan} membership?",
                    "Please cancel my subscription, I'm moving to {country}.",
                ),
                "You can cancel {plan} any time under **Account → Membership → Cancel**. It "
                "stays active until the end of the period you paid for.",
                "Memberships cannot be cancelled during the first year.",
            ),
            Case(
                ("Will I get a refund if I cancel {plan} now?",),
                "Yes: unused full months of {plan} are refunded pro rata to your original "
                "payment method when you cancel under **Account → Membership**.",
                "No, membership fees are never refunded.",
            ),
        ),
    ),
    Topic(
        "damaged_item",
        0.1,
        (
            Case(
                (
                    "My {product} arrived broken.",
                    "The box for order {order} was crushed and the {product} is scratched.",
                ),
                "I'm sorry it arrived like that! Please upload a photo under **Orders → {order} "
                "→ Report a problem**. We'll send a replacement straight away — no need to "
                "return the damaged one.",
                "Damage during shipping is the carrier's responsibility; please contact {carrier}.",
            ),
        ),
    ),
    Topic(
        "legal_complaint",
        0.02,
        (
            Case(
                ("If I don't get my refund for {order} this week I'm taking you to court.",),
                "I understand your frustration. I've passed your message to our customer "
                "relations team, who will reply by email within one business day.",
                "You have no legal claim against us.",
            ),
            Case(
                ("Is a one-year warranty on the {product} even legal in the EU?",),
                "The one-year warranty is our own extra promise. It comes on top of your "
                "statutory rights, which in the EU last at least two years from delivery.",
                "Yes, in the EU a seller only has to guarantee products for one year.",
            ),
        ),
        domain="legal",
    ),
)
