"""The student edition: every notebook without its worked solutions, still running top to
bottom, with every figure kept, and a folder that works on its own.

    make student        # writes student/ and student.zip (both git-ignored)
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from make_student_edition import build, is_solution, student_notebook  # noqa: E402

TEACHER = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    dest = tmp_path_factory.mktemp("edition") / "student"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_student_edition.py"),
                    "--dest", str(dest)], check=True, capture_output=True)
    return dest


def outputs_of(cells):
    return [(c.cell_type, c.source, c.get("outputs")) for c in cells]


@pytest.mark.parametrize("path", TEACHER, ids=lambda p: p.name)
def test_the_student_notebook_has_no_solution_and_keeps_everything_else(path, edition):
    teacher = nbformat.read(path, as_version=4)
    student = nbformat.read(edition / "notebooks" / path.name, as_version=4)
    assert any(is_solution(c) for c in teacher.cells), f"{path.name} has no solution to remove"
    assert not any(is_solution(c) for c in student.cells)
    assert not any("assert" in c.source for c in student.cells if "your turn" in c.source)
    kept = [c for c in student.cells if "your turn" not in c.source]
    assert outputs_of(kept) == outputs_of([c for c in teacher.cells if not is_solution(c)])
    stubs = [c for c in student.cells if c.source.startswith("# Exercise")]
    assert len(stubs) == sum(is_solution(c) and c.cell_type == "code" for c in teacher.cells)
    assert "execution" not in student.metadata          # the teacher's build fingerprint


def test_a_solution_added_to_the_teachers_edition_is_not_in_the_students():
    nb = nbformat.v4.new_notebook()
    exercise = nbformat.v4.new_markdown_cell("## Exercises\n\n1. Compute 6 x 7.")
    solution = nbformat.v4.new_code_cell("# Exercise 1: six times seven\nassert 6 * 7 == 42",
                                         metadata={"tags": ["solution"]})
    nb.cells = [exercise, solution]
    student = student_notebook(nb)
    assert [c.source for c in student.cells] == [exercise.source, "# Exercise 1: your turn"]
    assert len(nb.cells) == 2 and is_solution(nb.cells[1])     # the teacher's copy is untouched


def test_the_edition_carries_what_it_needs_to_run_on_its_own(edition):
    for name in ("helpers/__init__.py", "helpers/data.py", "pyproject.toml", "Makefile",
                 "environment.yml", "jupyter/labconfig/default_setting_overrides.json",
                 "tests/test_data.py"):
        assert (edition / name).is_file(), f"the student edition lacks {name}"
    assert sorted(p.name for p in (edition / "notebooks").glob("*.ipynb")) == \
        [p.name for p in TEACHER]
    assert not list(edition.rglob("__pycache__"))
    readme = (edition / "README.md").read_text(encoding="utf-8")
    assert "## The notebooks" in readme and "TEACHING.md" not in readme   # no dead link


def test_building_twice_gives_the_same_edition(tmp_path):
    first = [p.read_bytes() for p in build(tmp_path / "a")]
    second = [p.read_bytes() for p in build(tmp_path / "a")]
    assert first == second


def test_the_student_edition_runs_top_to_bottom_under_nbval(edition):
    """Every student notebook, stubs included, executed by nbval with the edition's own
    `helpers/` (first on the path), as a student's `make test` would."""
    env = dict(os.environ, PYTHONPATH=str(edition))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "notebooks"], cwd=edition, env=env, capture_output=True,
        text=True, timeout=1800)
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " failed" not in result.stdout and " passed" in result.stdout, tail


def test_the_student_edition_passes_its_own_lint(edition):
    """`make test` in the edition starts with `ruff check .`: an import that only a removed
    solution used would fail it."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=edition,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
