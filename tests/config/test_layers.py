"""The layer contract (pyproject.toml, `make lint`): it holds, and it fails on an upward import."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def contract() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(tree / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the project's packages and its pyproject.toml."""
    for package in contract()["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_it_lists_every_app_of_the_project_in_the_contract():
    from django.conf import settings

    apps = {a for a in settings.INSTALLED_APPS if "." not in a and (ROOT / a).is_dir()}
    layered = {
        name.strip() for layer in contract()["contracts"][0]["layers"] for name in layer.split("|")
    }
    assert apps | {"config"} == layered == set(contract()["root_packages"])


def test_it_keeps_the_contract_today(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("reviews/selectors.py", "console"),  # down the stack to a higher layer
        ("core/outbox.py", "config"),  # the wiring
        ("accounts/models.py", "agents"),  # two independent apps of one layer
    ],
)
def test_it_fails_when_an_import_points_up(tree, module, imported):
    with (tree / module).open("a") as handle:
        handle.write(f"\nimport {imported}  # noqa\n")

    result = lint(tree)

    assert result.returncode == 1
    assert "BROKEN" in result.stdout.upper()
    assert f"{module.split('/')[0]} is not allowed to import {imported}" in result.stdout
