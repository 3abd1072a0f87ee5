"""The starting error taxonomy. Created by migration 0002 and again after every `migrate` /
`flush` (post_migrate), so a flushed database (transactional tests, a reset) is never left
without it. Idempotent: existing rows, including an admin's edits to categories, are kept."""

CATEGORIES = (
    ("wrong-intent", "Wrong intent", "The agent misunderstood what the user asked."),
    ("factual-error", "Factual error", "A statement in the answer is false."),
    (
        "policy-legal-risk",
        "Policy / legal risk",
        "The answer breaks policy or creates legal exposure.",
    ),
    ("tone", "Tone", "Correct content, wrong register or attitude."),
    ("incomplete", "Incomplete", "The answer leaves out something the user needs."),
    ("hallucination", "Hallucination", "The answer invents products, laws, links or facts."),
    ("formatting", "Formatting", "Hard to read: structure, length or markup problems."),
    ("other", "Other", "Anything else; say what in the notes."),
)


def ensure_defaults(category_model) -> None:
    for position, (slug, name, description) in enumerate(CATEGORIES):
        category_model.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "position": position}
        )


def on_post_migrate(sender, **kwargs) -> None:
    from reviews.models import ErrorCategory

    ensure_defaults(ErrorCategory)
