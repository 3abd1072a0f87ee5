"""The rubric editor's forms: one row per criterion (a formset), and the version edited."""

from django import forms

from reviews.models import Criterion
from reviews.rubrics import MAX_CRITERIA, CriterionIn


class CriterionForm(forms.Form):
    # Every field but the text ones has an initial value that a blank row posts as it is,
    # so an untouched blank row is "unchanged" and skipped (a checkbox could not do that).
    key = forms.SlugField(
        max_length=50,
        label="Key",
        help_text="Lower-case, stable: the column name in exports and the API.",
    )
    name = forms.CharField(max_length=100, label="Name")
    help_text = forms.CharField(
        max_length=500, required=False, label="Help for reviewers", widget=forms.TextInput
    )
    kind = forms.ChoiceField(choices=Criterion.Kind.choices, initial="pass_fail", label="Kind")
    required = forms.TypedChoiceField(
        choices=[("1", "Required"), ("0", "Optional")],
        coerce=lambda value: value == "1",
        initial="1",
        label="Required",
    )


class _CriterionFormSet(forms.BaseFormSet):
    def _kept(self) -> list[forms.Form]:
        """The rows that make the rubric (Django's `ordered_forms` rule: not deleted, not
        an untouched blank row), in the order of their numbers, unnumbered ones last."""
        rows = [
            (i, form)
            for i, form in enumerate(self.forms)
            if (i < self.initial_form_count() or form.has_changed())
            and not form.cleaned_data.get("DELETE", False)
        ]

        def order(row: tuple[int, forms.Form]) -> tuple:
            number = row[1].cleaned_data.get("ORDER")
            return (number is None, number or 0, row[0])

        rows.sort(key=order)
        return [form for _, form in rows]

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: dict[str, str] = {}
        for form in self._kept():
            key = form.cleaned_data.get("key")
            if key in seen:
                form.add_error("key", f"Key {key!r} is already used by {seen[key]!r}.")
            elif key:
                seen[key] = form.cleaned_data.get("name") or key

    def criteria(self) -> tuple[list[CriterionIn], list[forms.Form]]:
        """The criteria to save, in order, and the form of each (for the service's errors).
        Call after is_valid()."""
        kept = self._kept()
        criteria = [
            CriterionIn(
                key=f.cleaned_data["key"],
                name=f.cleaned_data["name"],
                kind=f.cleaned_data["kind"],
                required=f.cleaned_data["required"],
                help_text=f.cleaned_data.get("help_text") or "",
            )
            for f in kept
        ]
        return criteria, kept


def initial_rows(criteria) -> list[dict]:
    """The formset's initial rows from a version's criteria."""
    return [
        {
            "key": c.key,
            "name": c.name,
            "help_text": c.help_text,
            "kind": c.kind,
            "required": "1" if c.required else "0",
            "ORDER": n,
        }
        for n, c in enumerate(criteria, start=1)
    ]


CriterionFormSet = forms.formset_factory(
    CriterionForm,
    formset=_CriterionFormSet,
    extra=2,  # blank rows to add criteria without JavaScript
    can_delete=True,
    can_order=True,
    max_num=MAX_CRITERIA,
    validate_max=True,
    absolute_max=MAX_CRITERIA + 2,
)


class RubricVersionForm(forms.Form):
    """The version the editor started from: a save on top of another one is refused."""

    base_version = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
