"""Export datasets registered by the apps above retraining (the layering forbids retraining
to import them): a `DatasetSource` says which rows a batch of that dataset holds, how they
are streamed and written. `evals` registers `comparisons` in its AppConfig.ready()
(evals/exports.py).

The `pairs` and `feedback` datasets are retraining's own and stay hard-wired (services.py,
build.py); everything that asks "which dataset is this" goes through `get()` first.

A registered dataset's batch is reproducible like the others: `cutoff()` is fixed at
request time (`ExportBatch.cutoff_id`) and `matching()` also receives the request time
(`ExportBatch.created_at` once the batch exists), so rows changing state later (a
comparison decided after the request) never change a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retraining import formats

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from retraining.models import ExportBatch


@dataclass(frozen=True)
class DatasetSource:
    """One export dataset provided by another app.

    - `matching(agent_id=, filters=, cutoff_id=, requested_at=)`: the rows a batch with
      these (normalised) filters holds, as a queryset (counted for the estimate and the
      build's progress).
    - `changed_since(rows, batch)`: those of `rows` a batch requested earlier (`batch`) does
      not hold: the "identical batch" check offers an earlier batch only when none.
    - `chunks(batch, fields, chunk_size, using=)`: the batch's rows as tuples of the writer's
      `fields`, in `order` order, in chunks.
    - `cutoff()`: the highest row id now (frozen as the batch's `cutoff_id`).
    - `writers`: format → writer class; its keys are the formats the dataset allows.
    - `filter_keys`: the filters it accepts besides date_from / date_to / intents / domains
      (which `services.filters_clean` checks for every dataset): `choice_filters` (key →
      allowed values) and `version_filters` (lists of agent versions).
    - `tally(row)`: the label a row is counted under in `counts[count_key]`.
    """

    name: str
    what: str  # "decided comparisons": the rows, in an error message
    matching: Callable[..., QuerySet]
    changed_since: Callable[[QuerySet, ExportBatch], QuerySet]
    chunks: Callable[..., Generator[list[tuple]]]
    cutoff: Callable[[], int]
    writers: dict[str, type[formats.Writer]]
    order: str  # the manifest's row order: the id column
    tally: Callable[[tuple], str]
    count_key: str
    choice_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    version_filters: tuple[str, ...] = ()
    description: str = ""

    @property
    def formats(self) -> list[str]:
        return list(self.writers)

    @property
    def filter_keys(self) -> set[str]:
        return {*self.choice_filters, *self.version_filters}

    def rows(self, batch: ExportBatch):
        """The rows of `batch` (a queryset), as frozen at its request."""
        return self.matching(
            agent_id=batch.agent_id,
            filters=batch.filters,
            cutoff_id=batch.cutoff_id,
            requested_at=batch.created_at,
        )


_SOURCES: dict[str, DatasetSource] = {}


def register_dataset(name: str, source: DatasetSource) -> None:
    """Registers (or replaces: ready() may run twice in tests) the source of `name`, which
    must be one of `ExportBatch.Dataset` (a migration adds the choice and its formats)."""
    _SOURCES[name] = source


def get(name: str) -> DatasetSource | None:
    return _SOURCES.get(name)


def registered() -> dict[str, DatasetSource]:
    return dict(_SOURCES)


def writer_for(dataset: str, format: str) -> type[formats.Writer]:
    """The writer of a dataset's format, registered or built in. Raises ValueError."""
    source = get(dataset)
    if source is None:
        return formats.writer_for(dataset, format)
    try:
        return source.writers[format]
    except KeyError:
        raise ValueError(f"no {format!r} writer for the {dataset} dataset") from None


__all__ = ["DatasetSource", "get", "register_dataset", "registered", "writer_for"]
