"""`manage.py export_batch --agent SLUG --format FMT [--new-only] [--out PATH]`."""

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from retraining.models import ExportBatch

pytestmark = pytest.mark.django_db


def export_batch(*args):
    out = io.StringIO()
    call_command("export_batch", *args, stdout=out)
    return dict(line.split(" ", 1) for line in out.getvalue().splitlines())


def test_it_builds_a_batch_and_prints_its_id_rows_sha256_and_path(agent, tricky_pairs):
    printed = export_batch("--agent", "support-bot", "--format", "jsonl")

    batch = ExportBatch.objects.get()
    assert printed["id"] == str(batch.pk)
    assert printed["rows"] == "8"
    assert printed["sha256"] == batch.sha256
    assert hashlib.sha256(Path(printed["path"]).read_bytes()).hexdigest() == batch.sha256
    assert json.loads(Path(printed["manifest"]).read_text())["id"] == batch.pk
    assert batch.created_by is None  # the command line


def test_it_copies_the_file_and_manifest_to_out(agent, tricky_pairs, tmp_path):
    target = tmp_path / "out" / "train.parquet"

    printed = export_batch("--agent", "support-bot", "--format", "parquet", "--out", str(target))

    assert printed["path"] == str(target)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == printed["sha256"]
    assert (tmp_path / "out" / "train.manifest.json").exists()


def test_it_builds_only_new_pairs(agent, decide):
    decide(agent, "Q", "A")
    assert export_batch("--agent", "support-bot", "--format", "csv", "--new-only")["rows"] == "1"

    with pytest.raises(CommandError) as caught:  # nothing new: no empty batch is built
        export_batch("--agent", "support-bot", "--format", "csv", "--new-only")

    assert caught.value.returncode == 3
    assert str(caught.value) == (
        "Nothing to export: no training pairs match these filters "
        "(every matching pair is already in a batch)."
    )
    assert ExportBatch.objects.count() == 1


def test_it_passes_filters_through(agent, decide):
    decide(agent, "a", "A")
    decide(agent, "b", "B", verdict="correct", corrected="B!", category="tone")

    printed = export_batch(
        "--agent", "support-bot", "--format", "jsonl", "--error-category", "tone",
        "--source", "correct",
    )  # fmt: skip

    assert printed["rows"] == "1"
    assert ExportBatch.objects.get().filters["error_categories"] == ["tone"]


def test_it_exits_2_for_an_unknown_agent(db):
    with pytest.raises(CommandError) as caught:
        call_command("export_batch", "--agent", "nobody", "--format", "jsonl")

    assert caught.value.returncode == 2


def test_it_exits_1_with_the_reason_when_the_build_fails(agent, decide, monkeypatch):
    from retraining import formats

    decide(agent, "Q", "A")
    monkeypatch.setattr(formats.CsvWriter, "write", lambda *a: 1 / 0)

    with pytest.raises(CommandError, match="failed: ZeroDivisionError") as caught:
        call_command("export_batch", "--agent", "support-bot", "--format", "csv")

    assert caught.value.returncode == 1
