"""Every notebook fits one class period and reads well on a projector.

- Class time, estimated as prose words / 50 + visible code lines / 10 minutes (worked
  solutions and collapsed figure code left out), is 60 minutes or less.
- A collapsed code cell holds figure-drawing code only, and its first line says what it
  draws; a figure shown under a visible cell has at most about ten lines of code above it.
- Text in the notebooks' own figures is 10 pt or more.
- Every numbered exercise has a worked solution: cells tagged `solution`, collapsed (code
  and output) so that projecting the notebook reveals nothing by accident, saying which
  exercise they solve, and checking their answer with an assert.
"""

import base64
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from notebook_stats import class_minutes, is_collapsed, is_solution  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MAX_MINUTES = 60
MAX_LINES_ABOVE_A_FIGURE = 12          # "about ten"
MAX_FIGURE_PX = 840
FIGURE_CODE = re.compile(r"\bplt\.|\bax\w*\.|\bfig\w*\b|Figure\(|\bplot_|\bshow_images\(")
SMALL_FONT = re.compile(r"\b(?:fontsize|labelsize|size)\s*=\s*(\d+(?:\.\d+)?)\b")


def read(path):
    return nbformat.read(path, as_version=4)


def has_image(cell):
    return any("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_class_period(path):
    words, lines, minutes = class_minutes(read(path))
    assert minutes <= MAX_MINUTES, (f"{path.name}: about {minutes:.0f} min of class "
                                    f"({words} words, {lines} visible code lines)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_figure_code_is_collapsed_and_it_says_what_it_draws(path):
    bad = []
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type != "code" or not is_collapsed(cell) or is_solution(cell):
            continue
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if not first.startswith("#") or len(first.split()) < 3:
            bad.append(f"cell {i}: first line {first!r} should say what it draws")
        if not (has_image(cell) or FIGURE_CODE.search(cell.source)):
            bad.append(f"cell {i}: collapsed, but it draws no figure")
    assert not bad, f"{path.name}: " + "; ".join(bad)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_not_behind_walls_of_code(path):
    long = [f"cell {i}: {len(cell.source.splitlines())} lines"
            for i, cell in enumerate(read(path).cells)
            if cell.cell_type == "code" and has_image(cell) and not is_collapsed(cell)
            and not is_solution(cell) and len(cell.source.splitlines()) > MAX_LINES_ABOVE_A_FIGURE]
    assert not long, (f"{path.name}: figures under more than {MAX_LINES_ABOVE_A_FIGURE} "
                      f"visible lines (move the drawing to helpers/ or a collapsed cell): {long}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_figures_fit_jupyterlab_at_1280_px_unscaled(path):
    """JupyterLab at 1280 x 720 gives an output about 840 px: a wider PNG is scaled down."""
    wide = []
    for i, cell in enumerate(read(path).cells):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                width = int.from_bytes(base64.b64decode(png[:44])[16:20], "big")
                if width > MAX_FIGURE_PX:
                    wide.append(f"cell {i}: {width} px")
    assert not wide, f"{path.name}: figures wider than {MAX_FIGURE_PX} px: {wide}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_text_in_figures_is_10_pt_or_more(path):
    small = [f"cell {i}: {m.group(0)}" for i, cell in enumerate(read(path).cells)
             if cell.cell_type == "code"
             for m in SMALL_FONT.finditer(cell.source) if float(m.group(1)) < 10]
    assert not small, f"{path.name}: text under 10 pt: {small}"


def exercise_numbers(nb):
    """The numbers of the items listed under the notebook's "Exercises" heading."""
    numbers = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^#+ .*Exercises", cell.source, re.M):
            numbers += [int(n) for n in re.findall(r"^\s*(\d+)\.\s", cell.source, re.M)]
    return numbers


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_collapsed_worked_solution_that_checks_itself(path):
    nb = read(path)
    exercises = exercise_numbers(nb)
    assert exercises, f"{path.name}: no numbered exercises under an 'Exercises' heading"
    solved, problems = set(), []
    for i, cell in enumerate(nb.cells):
        if not is_solution(cell):
            continue
        hidden = cell.metadata.get("jupyter", {})
        if not hidden.get("source_hidden"):
            problems.append(f"cell {i}: solution not collapsed")
        if cell.cell_type == "code" and not hidden.get("outputs_hidden"):
            problems.append(f"cell {i}: solution output not collapsed")
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        said = re.findall(r"[Ee]xercises? (\d+)", first)
        if not said:
            problems.append(f"cell {i}: first line should say which exercise it solves")
        solved |= {int(n) for n in said}
        if cell.cell_type == "code" and not re.search(r"\bassert\b|assert_close", cell.source):
            problems.append(f"cell {i}: a solution should check its answer with an assert")
    missing = sorted(set(exercises) - solved)
    assert not missing, f"{path.name}: exercises without a worked solution: {missing}"
    assert not problems, f"{path.name}: " + "; ".join(problems)
