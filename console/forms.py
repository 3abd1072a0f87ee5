"""Forms of the admin console."""

from typing import cast

import phonenumbers
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.validators import MaxLengthValidator
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import ReviewerProfile
from agents import redaction
from agents.models import Agent
from console.policy import AlertThresholdFields
from console.selectors import SORTS, Pool, QueueFilter
from console.services import MAX_DOMAIN, MAX_POLICY_TAGS, policy_tags
from reviews.forms import ScoredDecisionFields
from reviews.models import ReviewItem
from reviews.services import DECIDING

MAX_AGE_HOURS = 100 * 365 * 24
# A bulk action names at most this many items (a page shows 50 rows); larger selections go
# through "All matching the filters", which the confirmation step signs.
MAX_BULK_IDS = 1_000
MAX_ID_DIGITS = 18  # a bigint primary key
ASSIGNED_CHOICES = [
    ("", "Anyone or no one"),
    ("unassigned", "Unassigned"),
    ("assigned", "Assigned"),
]


def reviewer_choices() -> list[tuple[str, str]]:
    users = (
        get_user_model()
        .objects.filter(groups__name="reviewer", is_active=True)
        .order_by("username")
    )
    return [(u.username, u.username) for u in users]


class QueueFilterForm(forms.Form):
    """GET filters of the queue browser; also carried by the bulk form ("all matching")."""

    agent = forms.ChoiceField(required=False)
    domain = forms.CharField(required=False, max_length=100)
    reason = forms.ChoiceField(
        required=False, choices=[("", "Any reason"), *ReviewItem.Reason.choices]
    )
    status = forms.ChoiceField(required=False, choices=[("", "Open"), *ReviewItem.Status.choices])
    # The bound keeps `now - timedelta(hours=...)` within datetime's range (~100 years).
    min_age_hours = forms.FloatField(
        required=False, min_value=0, max_value=MAX_AGE_HOURS, label="Older than (h)"
    )
    max_age_hours = forms.FloatField(
        required=False, min_value=0, max_value=MAX_AGE_HOURS, label="Newer than (h)"
    )
    min_confidence = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Confidence ≥"
    )
    max_confidence = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Confidence ≤"
    )
    assigned = forms.ChoiceField(required=False)
    sort = forms.ChoiceField(required=False, choices=[(k, k) for k in SORTS])

    def __init__(
        self, *args, agents: list[Agent], reviewers: list[tuple[str, str]] | None = None, **kwargs
    ):
        """`reviewers`: `reviewer_choices()` when the caller has them already (a query)."""
        super().__init__(*args, **kwargs)
        # Agents are named by slug, as in every other URL and the admin API.
        self.agents = {a.slug: a for a in agents}
        self.fields["agent"].choices = [("", "All agents"), *((a.slug, a.slug) for a in agents)]
        reviewers = reviewer_choices() if reviewers is None else reviewers
        self.fields["assigned"].choices = [*ASSIGNED_CHOICES, *reviewers]

    def queue_filter(self) -> QueueFilter | None:
        """The filter to browse with: the default (open items) when no filter was sent, and
        None when a filter is invalid. An invalid filter must never widen the selection, so
        the caller lists and acts on nothing (`selectors.queue_browse(None)` is empty)."""
        if not self.is_bound:
            return QueueFilter()
        if not self.is_valid():
            return None
        data = self.cleaned_data
        return QueueFilter(
            agent_id=self.agents[data["agent"]].pk if data["agent"] else None,
            domain=data["domain"] or "",
            reason=data["reason"] or "",
            status=data["status"] or "",
            min_age_hours=data["min_age_hours"],
            max_age_hours=data["max_age_hours"],
            min_confidence=data["min_confidence"],
            max_confidence=data["max_confidence"],
            assigned=data["assigned"] or "",
            sort=data["sort"] or "priority",
        )

    def error_list(self, *, by_name: bool = False) -> list[str]:
        """`Label: message` (`name: message` with `by_name`) for every invalid filter."""
        lines = []
        for name, errors in self.errors.items():
            field = self.fields.get(name)
            title = name if by_name or field is None else field.label or name.capitalize()
            lines.append(f"{title}: {' '.join(errors)}")
        return lines


class BulkActionForm(forms.Form):
    ACTIONS = [
        ("assign", "Assign to reviewer"),
        ("spread", "Spread evenly across the pool"),
        ("unassign", "Unassign"),
        ("release", "Release stuck claims"),
        ("priority", "Set priority"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    scope = forms.ChoiceField(
        choices=[("selected", "Selected items"), ("matching", "All matching the filters")]
    )
    ids = forms.CharField(required=False)  # comma-separated ids (checkboxes are joined by the page)
    reviewer = forms.ChoiceField(required=False)
    priority = forms.IntegerField(required=False, min_value=-100, max_value=100)

    # The confirmation step (more than CONFIRM_ABOVE items): `selection` is the token the
    # confirmation form carries, `confirm=yes` its button.
    confirm = forms.ChoiceField(required=False, choices=[("", "—"), ("yes", "yes")])
    selection = forms.CharField(required=False, max_length=64)

    def __init__(self, *args, reviewers: list[tuple[str, str]] | None = None, **kwargs):
        """`reviewers`: `reviewer_choices()` when the caller has them already (a query)."""
        super().__init__(*args, **kwargs)
        reviewers = reviewer_choices() if reviewers is None else reviewers
        self.fields["reviewer"].choices = [("", "—"), *reviewers]

    def describe(self) -> str:
        """What the action does, in words, e.g. "Assign to reviewer rita"."""
        data = self.cleaned_data
        label = dict(self.ACTIONS)[data["action"]]
        if data["action"] == "assign":
            return f"{label} {data['reviewer']}"
        if data["action"] == "priority":
            return f"Set priority {data['priority']}"
        return label

    def selection_token(self, *, ids: list[int], user_id: int) -> str:
        """A keyed hash of the action and the exact items it would change (sorted ids): the
        confirmation form carries it, and the action runs only if the selection it finds on
        the second POST hashes to the same value."""
        data = self.cleaned_data
        reviewer = data["reviewer"] if data["action"] == "assign" else ""
        priority = data["priority"] if data["action"] == "priority" else ""
        payload = "|".join(
            (str(user_id), data["action"], reviewer, str(priority), ",".join(map(str, ids)))
        )
        return salted_hmac("console.bulk.selection", payload, algorithm="sha256").hexdigest()

    def confirmed(self, token: str) -> bool:
        return self.cleaned_data["confirm"] == "yes" and constant_time_compare(
            self.cleaned_data["selection"], token
        )

    def clean_ids(self) -> list[int]:
        """The distinct item ids, in the order given. At most MAX_BULK_IDS: a page shows 50
        rows, and "All matching the filters" (scope=matching) is how a larger selection is
        made, so a longer list is refused before it reaches the database."""
        raw = (
            self.data.getlist("ids")
            if hasattr(self.data, "getlist")
            else [self.cleaned_data.get("ids", "")]
        )
        ids: dict[int, None] = {}
        for value in raw:
            for part in value.split(","):
                part = part.strip()
                if not part:
                    continue
                if not (part.isascii() and part.isdigit() and len(part) <= MAX_ID_DIGITS):
                    raise forms.ValidationError(f"not an item id: {part[:20]!r}")
                ids[int(part)] = None
                if len(ids) > MAX_BULK_IDS:
                    raise forms.ValidationError(
                        f"{MAX_BULK_IDS:,} items at most per action; choose “All matching "
                        "the filters” to act on more."
                    )
        return list(ids)

    def clean(self):
        data = super().clean()
        if data.get("action") == "assign" and not data.get("reviewer"):
            self.add_error("reviewer", "Choose the reviewer to assign to.")
        if data.get("action") == "priority" and data.get("priority") is None:
            self.add_error("priority", "Give the new priority (-100 to 100).")
        if data.get("scope") == "selected" and not data.get("ids"):
            self.add_error("ids", "Select at least one item, or choose “All matching the filters”.")
        return data


def _username_label(user) -> str:
    profile = getattr(user, "reviewer_profile", None)
    away = profile is not None and not profile.active
    return f"{user.get_username()} (away)" if away else user.get_username()


class PoolNameForm(forms.Form):
    """The domain of a pool: "open or start a pool" on the pools page, and the pool every
    add / remove POST names."""

    domain = forms.CharField(
        label="Open or start a pool",
        max_length=MAX_DOMAIN,
        help_text="The domain: the routing tag of the items, e.g. legal.",
        error_messages={"required": "Give the domain of the pool, e.g. legal."},
    )


class PoolAddForm(forms.Form):
    """Adds one of the reviewers who are not in the pool yet (`candidates`)."""

    reviewer = forms.CharField(
        label="Reviewer",
        widget=forms.Select,
        error_messages={"required": "Choose the reviewer to add."},
    )

    def __init__(self, *args, pool: Pool, candidates: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.candidates = {u.get_username(): u for u in candidates}
        self.fields["reviewer"].widget.choices = [
            ("", "Choose a reviewer…"),
            *((name, _username_label(u)) for name, u in self.candidates.items()),
        ]

    def clean_reviewer(self):
        name = self.cleaned_data["reviewer"]
        if any(u.get_username() == name for u in self.pool.members):
            raise forms.ValidationError(f"{name} is already in the {self.pool.domain} pool.")
        if name not in self.candidates:
            raise forms.ValidationError(f"There is no reviewer named {name}.")
        return self.candidates[name]


class PoolRemoveForm(forms.Form):
    """Takes a member out of the pool (the row's "Remove" button names them)."""

    reviewer = forms.CharField(max_length=150, widget=forms.HiddenInput)

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = pool

    def clean_reviewer(self):
        name = self.cleaned_data["reviewer"]
        for user in self.pool.members:
            if user.get_username() == name:
                return user
        raise forms.ValidationError(f"{name} is not in the {self.pool.domain} pool.")


class ReviewerProfileForm(forms.ModelForm):
    """A reviewer's pool settings: their pools (one box per known domain), daily capacity
    and whether they take new work."""

    domains = forms.MultipleChoiceField(
        label="Pools",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The domains this reviewer reviews. Start a new pool on the pools page.",
    )

    class Meta:
        model = ReviewerProfile
        fields = ["daily_capacity", "active"]
        labels = {"daily_capacity": "Daily capacity", "active": "Taking new work"}
        help_texts = {
            "daily_capacity": "Items a day that assignment may give them.",
            "active": "Away reviewers get no new assignments and claim nothing from their pools.",
        }

    def __init__(self, *args, domains: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        current = list(self.instance.domains or [])
        names = sorted({*domains, *current}, key=str.casefold)
        pools = cast(forms.MultipleChoiceField, self.fields["domains"])
        pools.choices = [(d, d) for d in names]
        pools.initial = current

    def changes(self) -> dict:
        return {
            "domains": sorted(self.cleaned_data["domains"]),
            "daily_capacity": self.cleaned_data["daily_capacity"],
            "active": self.cleaned_data["active"],
        }


def _tags(value: str, *, what: str) -> list[str]:
    return policy_tags(value.split(","), what=what)


class RedactionFields(forms.Form):
    """The agent's personal data redaction policy (agents/redaction.py) as form fields;
    `clean_redaction` builds the stored value and puts each problem on its field."""

    redaction_types = forms.MultipleChoiceField(
        label="Redact",
        required=False,
        choices=[
            ("email", "E-mail addresses"),
            ("phone", "Phone numbers"),
            ("iban", "IBANs"),
            ("card", "Payment card numbers"),
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    redaction_patterns = forms.CharField(
        label="Own patterns",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            "One per line, NAME = regular expression, e.g. CASE_ID = CASE-[0-9]{6} "
            f"(placeholders [CASE_ID_1], …; at most {redaction.MAX_PATTERNS}, "
            f"{redaction.MAX_PATTERN_LENGTH} characters each)"
        ),
    )
    redaction_regions = forms.CharField(
        label="Phone regions",
        required=False,
        help_text=(
            "Comma-separated region codes whose national numbers are recognised, e.g. GB, DE "
            "(empty: " + ", ".join(redaction.DEFAULT_REGIONS) + "); +international numbers "
            "are found whatever the region"
        ),
    )
    redaction_keep_originals = forms.BooleanField(
        label="Keep originals for admins",
        required=False,
        help_text="Stored apart, shown only to admins on request, each reveal audited.",
    )

    def add_redaction_initial(self, value: dict) -> None:
        value = value or {}
        self.fields["redaction_types"].initial = value.get("types") or []
        self.fields["redaction_patterns"].initial = "\n".join(
            f"{p['name']} = {p['regex']}" for p in value.get("patterns") or []
        )
        self.fields["redaction_regions"].initial = ", ".join(value.get("regions") or [])
        self.fields["redaction_keep_originals"].initial = bool(value.get("keep_originals"))

    def clean_redaction(self) -> dict:
        """The policy to store ({} when nothing is redacted); field errors added."""
        data = self.cleaned_data
        patterns = []
        for n, line in enumerate((data.get("redaction_patterns") or "").splitlines(), 1):
            if not line.strip():
                continue
            name, sep, regex = line.partition("=")
            if not sep:
                self.add_error("redaction_patterns", f"Line {n}: write NAME = regex.")
                continue
            name, regex = name.strip(), regex.strip()
            for problem in redaction.pattern_problems(name, regex):
                self.add_error("redaction_patterns", f"Line {n} ({name}): {problem}.")
            patterns.append({"name": name, "regex": regex})
        if len(patterns) > redaction.MAX_PATTERNS:
            self.add_error("redaction_patterns", f"At most {redaction.MAX_PATTERNS} patterns.")
        if len({p["name"] for p in patterns}) < len(patterns):
            self.add_error("redaction_patterns", "Each pattern needs its own name.")
        regions = [r.strip().upper() for r in (data.get("redaction_regions") or "").split(",")]
        regions = [r for r in regions if r]
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            self.add_error("redaction_regions", f"Unknown region codes: {', '.join(unknown)}.")
        types = list(data.get("redaction_types") or [])
        if not types and not patterns:
            return {}
        value: dict = {"types": types, "keep_originals": bool(data.get("redaction_keep_originals"))}
        if patterns:
            value["patterns"] = patterns
        if regions:
            value["regions"] = regions
        return value


class AgentPolicyForm(RedactionFields, AlertThresholdFields, forms.ModelForm):
    review_intents_text = forms.CharField(
        label="Always review intents",
        required=False,
        help_text=f"Comma-separated, e.g. refund, legal_threat (at most {MAX_POLICY_TAGS})",
    )
    review_domains_text = forms.CharField(
        label="Always review domains",
        required=False,
        help_text=f"Comma-separated, e.g. legal (at most {MAX_POLICY_TAGS})",
    )

    class Meta:
        model = Agent
        fields = [
            "name",
            "kind",
            "domain",
            "confidence_threshold",
            "audit_rate",
            "required_reviews",
            "auto_assign",
            "guidelines",
        ]
        labels = {"auto_assign": "Assign automatically"}
        widgets = {
            "confidence_threshold": forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}),
            "audit_rate": forms.NumberInput(attrs={"min": 0, "max": 1, "step": "any"}),
            "guidelines": forms.Textarea(attrs={"rows": 10}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["review_intents_text"].initial = ", ".join(self.instance.review_intents or [])
        self.fields["review_domains_text"].initial = ", ".join(self.instance.review_domains or [])
        self.add_threshold_fields(self.instance.alert_thresholds)
        self.add_redaction_initial(self.instance.redaction)
        # The bound of agent output (core/markdown.py); agent_policy_update checks it too.
        guidelines = self.fields["guidelines"]
        guidelines.validators.append(MaxLengthValidator(settings.INGEST_MAX_TEXT_CHARS))

    def clean(self):
        data = super().clean()
        self.clean_thresholds()
        data["redaction"] = self.clean_redaction()
        return data

    def clean_review_intents_text(self) -> list[str]:
        return _tags(self.cleaned_data["review_intents_text"], what="an intent")

    def clean_review_domains_text(self) -> list[str]:
        return _tags(self.cleaned_data["review_domains_text"], what="a domain")

    def add_service_errors(self, exc: forms.ValidationError) -> None:
        """The service's refusal (model rules, threshold shape) on the fields it names."""
        for name, messages in exc.message_dict.items():
            for message in messages:
                if name in self.fields:
                    self.add_error(name, message)
                else:
                    label = "Alert thresholds" if name == "alert_thresholds" else name
                    self.add_error(None, f"{label}: {message}")

    def changes(self) -> dict:
        data = {name: self.cleaned_data[name] for name in self.Meta.fields}
        data["review_intents"] = self.cleaned_data["review_intents_text"]
        data["review_domains"] = self.cleaned_data["review_domains_text"]
        data["alert_thresholds"] = self.cleaned_data["alert_thresholds"]
        data["redaction"] = self.cleaned_data["redaction"]
        return data


class AuditFilterForm(forms.Form):
    user = forms.CharField(required=False, max_length=150)
    item = forms.IntegerField(required=False, min_value=1)
    action = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


class AdjudicationForm(ScoredDecisionFields):
    """A review lead's final decision on a disputed item, optionally scored with the agent's
    rubric (required criteria are not required of an adjudication)."""

    verdicts = tuple(DECIDING)
