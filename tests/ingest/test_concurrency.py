"""Two imports of the same file at the same time, on PostgreSQL, as two real processes."""

import json
import subprocess
import sys

import pytest

from agents.models import Interaction
from reviews.models import ReviewItem
from tests.support import ROOT, subprocess_env

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_imports_the_same_file_twice_concurrently_without_loss_or_duplicates(tmp_path):
    path = tmp_path / "same.jsonl"
    n = 6000
    with path.open("w") as out:
        for i in range(n):
            # Shuffled-ish order so the two importers' batches overlap without lining up.
            j = (i * 7919) % n
            out.write(
                json.dumps(
                    {
                        "external_id": f"t-{j}",
                        "agent": "support-bot",
                        "input": f"Q {j}",
                        "output": "A.",
                        "confidence": (j % 100) / 100,
                    }
                )
                + "\n"
            )
    env = subprocess_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "import_interactions", str(path), "--batch-size", "500"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-2000:] for o in outputs]

    summaries = [o[0].decode().strip().splitlines()[-1] for o in outputs]
    created = [int(s.split(",")[0].split()[-1]) for s in summaries]
    duplicates = [int(s.split(",")[1].split()[-1]) for s in summaries]
    assert sum(created) == n, summaries
    assert sum(duplicates) == n, summaries
    assert Interaction.objects.count() == n
    # Every interaction below the default threshold (0.7) is queued exactly once.
    assert ReviewItem.objects.filter(reason="low_confidence").count() == n * 70 // 100
    assert ReviewItem.objects.count() == ReviewItem.objects.values("interaction").distinct().count()
