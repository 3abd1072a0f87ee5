"""import_interactions / import_feedback: the output and exit codes of DESIGN.md, run as real
processes (stdout, stdin and exit status are the contract)."""

import json

import pytest
from django.core.management import call_command

from agents.models import FeedbackEvent, Interaction
from tests.support import manage

pytestmark = pytest.mark.django_db(transaction=True)


def line(external_id, confidence=0.5, **extra):
    return json.dumps(
        {
            "external_id": external_id,
            "agent": "support-bot",
            "input": "Q?",
            "output": "A.",
            "confidence": confidence,
            **extra,
        }
    )


@pytest.fixture
def sqlite_file_db(settings):
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and settings.DATABASES[
        "default"
    ]["NAME"].startswith("file:"):
        pytest.skip("in-memory SQLite test database cannot be shared with a subprocess")


def test_it_prints_the_summary_and_exits_0_when_all_lines_are_good(tmp_path, sqlite_file_db):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([line("t-1"), line("t-2"), line("t-1")]) + "\n")
    done = manage("import_interactions", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == ["imported 2, duplicates 1, rejected 0"]


def test_it_prints_one_line_per_rejected_record_and_exits_1(tmp_path, sqlite_file_db):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        "\n".join(
            [
                line("t-1"),
                line("t-2", confidence=1.5),
                "not json",
                line("t-4", sentiment=2, confidence=7),
            ]
        ).encode()
        + b"\n"
        + line("t-5").encode().replace(b"Q?", b"Q\xff")
        + b"\n"
    )
    done = manage("import_interactions", str(path))
    assert done.returncode == 1
    assert done.stdout.decode().splitlines() == [
        "line 2: confidence: must be between 0 and 1, got 1.5",
        "line 3: record: not valid JSON: Expecting value at column 1",
        "line 4: confidence: must be between 0 and 1, got 7",
        "line 5: record: not valid UTF-8 (byte 0xff at byte offset 58)",
        "imported 1, duplicates 0, rejected 4",
    ]
    assert list(Interaction.objects.values_list("external_id", flat=True)) == ["t-1"]


def test_it_imports_tool_steps_and_names_a_bad_one_by_path(tmp_path, sqlite_file_db):
    calls = [{"id": "c1", "name": "lookup_order", "arguments": {"order": "A-1"}}]
    steps = [
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
    ]
    nameless = [{"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]}]
    path = tmp_path / "in.jsonl"
    path.write_text(line("t-1", steps=steps) + "\n" + line("t-2", steps=nameless) + "\n")

    done = manage("import_interactions", str(path))

    assert done.returncode == 1
    assert done.stdout.decode().splitlines() == [
        "line 2: steps[0].tool_calls[0].name: is required",
        "imported 1, duplicates 0, rejected 1",
    ]
    stored = Interaction.objects.get()
    assert stored.steps[0]["tool_calls"][0]["arguments"] == '{"order":"A-1"}'
    assert stored.steps[1] == {"role": "tool", "tool_call_id": "c1", "content": "shipped"}


def test_it_exits_2_when_the_input_cannot_be_read(tmp_path, sqlite_file_db):
    done = manage("import_interactions", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2
    assert "cannot read" in done.stderr.decode()


def test_it_reads_standard_input(sqlite_file_db):
    done = manage("import_interactions", "-", stdin=(line("t-1") + "\n" + line("t-2")).encode())
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "imported 2, duplicates 0, rejected 0"


def test_it_reads_a_json_array_file(tmp_path, sqlite_file_db):
    path = tmp_path / "in.json"
    path.write_text("[\n" + ",\n".join([line("t-1"), line("t-2", confidence="high")]) + "\n]\n")
    done = manage("import_interactions", str(path))
    assert done.returncode == 1
    assert done.stdout.decode().splitlines() == [
        "line 3: confidence: must be a number, got string",
        "imported 1, duplicates 0, rejected 1",
    ]


def test_it_imports_feedback_with_the_same_contract(tmp_path, sqlite_file_db):
    manage("import_interactions", "-", stdin=line("t-1").encode())
    path = tmp_path / "fb.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "agent": "support-bot",
                        "external_id": "t-1",
                        "kind": "clicked",
                        "item_ref": "sku-1",
                    }
                ),
                json.dumps({"agent": "support-bot", "external_id": "t-9", "kind": "clicked"}),
                json.dumps({"agent": "support-bot", "external_id": "t-1", "kind": "meh"}),
            ]
        )
        + "\n"
    )
    done = manage("import_feedback", str(path))
    assert done.returncode == 1
    out = done.stdout.decode().splitlines()
    assert out[0].startswith("line 3: kind: must be one of")
    assert out[1] == "line 2: external_id: no interaction 't-9' for agent 'support-bot'"
    assert out[-1] == "imported 1, duplicates 0, rejected 2"
    assert FeedbackEvent.objects.count() == 1


def test_it_runs_in_process_too(tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    path.write_text(line("t-1") + "\n")
    call_command("import_interactions", str(path))
    assert capsys.readouterr().out.strip() == "imported 1, duplicates 0, rejected 0"
