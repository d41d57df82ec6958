"""Write the student edition of the course: the notebooks without their worked solutions.

    python scripts/make_student_edition.py              # writes student/ and student.zip
    python scripts/make_student_edition.py --dest DIR   # somewhere else, no zip

The notebooks in `notebooks/` are the teacher's edition: every exercise has a worked
solution in cells tagged `solution`. The student edition keeps every other cell with its
stored outputs (so students see every figure), puts an empty "your turn" cell where each
solution's code was, and drops the teacher-only metadata (the execution fingerprint). Next
to the notebooks go `helpers/` and what they need to run on their own with the same two
commands (`make lab`, `make test`): the package files, the project-local JupyterLab
settings, and the helpers' own tests.
"""

import argparse
import re
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ALONGSIDE = ["helpers", "jupyter", "scripts/execute_notebooks.py", "scripts/notebook_stats.py",
             "Makefile", "pyproject.toml", "environment.yml", "README.md", ".gitignore"]
HELPER_TESTS = ["test_data.py", "test_device.py", "test_training.py", "test_plotting.py",
                "test_widgets.py", "test_diagnostics.py", "test_helpers_layout.py"]
TEACHER_ONLY_METADATA = ("execution",)


def is_solution(cell):
    return "solution" in cell.metadata.get("tags", [])


def student_notebook(nb):
    """A copy of `nb` without solution cells: a code solution becomes an empty stub."""
    nb = nbformat.from_dict(nb)              # a deep copy: the teacher's edition stays as it is
    cells = []
    for cell in nb.cells:
        if not is_solution(cell):
            cells.append(cell)
        elif cell.cell_type == "code":
            exercise = re.search(r"[Ee]xercises? (\d+)", cell.source)
            label = f"Exercise {exercise.group(1)}" if exercise else "Exercise"
            stub = nbformat.v4.new_code_cell(f"# {label}: your turn")
            if "id" in cell:
                stub.id = cell.id             # the solution's id: the same edition every time
            cells.append(stub)
    nb.cells = cells
    for key in TEACHER_ONLY_METADATA:
        nb.metadata.pop(key, None)
    return nb


def student_readme(text):
    """README without what points to the teacher's guide (TEACHING.md is not copied)."""
    paragraphs = [p for p in text.split("\n\n") if not p.startswith("**Teaching with it?**")]
    return "\n".join(line for line in "\n\n".join(paragraphs).split("\n")
                     if not line.startswith("TEACHING.md"))


def build(dest):
    """Write the student edition into `dest` (replacing it) and return the notebook paths."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "notebooks").mkdir(parents=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = student_notebook(nbformat.read(path, as_version=4))
        target = dest / "notebooks" / path.name
        nbformat.write(nb, target)
        written.append(target)
    for name in ALONGSIDE:
        source, target = ROOT / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target)
    readme = dest / "README.md"
    readme.write_text(student_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    (dest / "tests").mkdir()
    for name in HELPER_TESTS:
        shutil.copy2(ROOT / "tests" / name, dest / "tests" / name)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=None, help="default: student/ and student.zip")
    args = parser.parse_args()
    dest = Path(args.dest) if args.dest else ROOT / "student"
    written = build(dest)
    print(f"student edition: {len(written)} notebooks in {dest}")
    if args.dest is None:
        archive = shutil.make_archive(str(ROOT / "student"), "zip", root_dir=ROOT,
                                      base_dir="student")
        print(f"and as one file to hand out: {archive}")


if __name__ == "__main__":
    main()
