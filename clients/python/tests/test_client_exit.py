"""Records still buffered when the interpreter exits are delivered by the atexit hook."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from client_support import stored_ids, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db")

SRC = Path(__file__).resolve().parents[1] / "src"

# flush_interval of an hour: nothing is sent before exit unless the exit hook sends it.
SCRIPT = textwrap.dedent(
    """
    import sys
    from coachdesk import Coachdesk

    client = Coachdesk(
        sys.argv[1], sys.argv[2], agent="exit-bot", flush_interval=3600,
        close_timeout=float(sys.argv[4]), backoff_base=0.05, max_backoff=0.2,
    )
    for n in range(int(sys.argv[3])):
        client.log_interaction(input=f"Q{n}", output="A", confidence=0.5, external_id=f"e-{n}")
    print("pending", client.pending)
    # no flush(), no close(): the interpreter exits
    """
)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_records_buffered_at_exit_are_delivered(server, agent_token):
    done = run_script(server, agent_token, "40", "30")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pending 40"
    ids = wait_for(lambda: stored_ids("exit-bot") if len(stored_ids("exit-bot")) == 40 else None)
    assert sorted(ids) == sorted(f"e-{n}" for n in range(40))


def test_exit_does_not_hang_when_the_server_is_away(proxy, agent_token):
    """Nothing listens: the exit hook gives up after close_timeout and the process still
    ends, with a log line saying what was lost."""
    done = run_script(proxy.url, agent_token, "3", "1")

    assert done.returncode == 0, done.stderr
    assert "not delivered" in done.stderr
    assert stored_ids("exit-bot") == []
