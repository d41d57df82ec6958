"""How long each notebook takes to teach, estimated, and to run, as one table.

    python scripts/notebook_stats.py            # the table, from the stored notebooks
    python scripts/notebook_stats.py --time     # also execute each one (CPU) and time it

Class time is estimated as prose words / 50 + visible code lines / 10 minutes: a teacher
reads about 50 words of explanation a minute with a class, and walks through about ten
lines of code. Worked solutions (cells tagged `solution`) and collapsed code cells (figure
drawing, hidden in JupyterLab) are left out, because they are not shown in class.
"""

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
WORDS_PER_MINUTE, LINES_PER_MINUTE = 50, 10


def is_solution(cell):
    return "solution" in cell.metadata.get("tags", [])


def is_collapsed(cell):
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden"))


def class_minutes(nb):
    """(prose words, visible code lines, estimated minutes) of a notebook, solutions left out."""
    shown = [c for c in nb.cells if not is_solution(c)]
    words = sum(len(c.source.split()) for c in shown if c.cell_type == "markdown")
    lines = sum(len(c.source.splitlines()) for c in shown
                if c.cell_type == "code" and not is_collapsed(c))
    return words, lines, words / WORDS_PER_MINUTE + lines / LINES_PER_MINUTE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", action="store_true", help="execute and time each notebook")
    args = parser.parse_args()
    if args.time:
        sys.path.insert(0, str(ROOT / "scripts"))
        from execute_notebooks import execute
    print("| notebook | prose words | visible code lines | class minutes | CPU seconds |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        words, lines, minutes = class_minutes(nb)
        seconds = f"{execute(path)[1]:.1f}" if args.time else "-"
        print(f"| {path.stem} | {words:,} | {lines} | {minutes:.0f} | {seconds} |")


if __name__ == "__main__":
    main()
