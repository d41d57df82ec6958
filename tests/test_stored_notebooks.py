"""The committed notebooks are executed, current and clean, so a reader sees every result.

Regenerate them with `make notebooks` (see CONTRIBUTING.md).
"""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from execute_notebooks import fingerprint  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LOCAL_PATH = re.compile(r"/root/|/home/\w+|/Users/\w+|/tmp/|site-packages|" + re.escape(str(ROOT)))
FIX = "run `make notebooks` (or scripts/execute_notebooks.py NAME) and commit the result"


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_in_order_from_a_fresh_kernel(path):
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not run top to bottom; {FIX}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_not_stale(path):
    nb = nbformat.read(path, as_version=4)
    stored = nb.metadata.get("execution", {}).get("fingerprint")
    assert stored == fingerprint(nb), (
        f"{path.name}: its code or helpers/ changed since it was executed; {FIX}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_clean(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: traceback ({out.ename})")
            if out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i}: stderr: {out.text[:80]!r}")
            data = out.get("data", {})
            if "<Figure size" in data.get("text/plain", "") and "image/png" not in data:
                problems.append(f"cell {i}: figure stored without an image")
            match = LOCAL_PATH.search(json.dumps(out))
            if match:
                problems.append(f"cell {i}: local path {match.group(0)!r} in the output")
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_playground_has_a_static_result(path):
    """A widget shows nothing on a static page, so a figure must be stored after it."""
    nb = nbformat.read(path, as_version=4)
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    widget_at = [i for i, out in enumerate(outputs)
                 if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    images_at = [i for i, out in enumerate(outputs) if "image/png" in out.get("data", {})]
    assert len(images_at) >= 3, f"{path.name}: fewer than 3 stored figures"
    for i in widget_at:
        assert any(j > i for j in images_at), f"{path.name}: no figure after a playground"


MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_relative_links_point_to_files_that_exist(path):
    nb = nbformat.read(path, as_version=4)
    broken = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for target in MARKDOWN_LINK.findall(cell.source):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue                                   # web links and in-page anchors
            file = target.split("#")[0]
            if not (path.parent / file).exists():
                broken.append(f"cell {i}: {target}")
    assert not broken, f"{path.name}: broken links: " + "; ".join(broken)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_by_pointing_to_the_next_one(path):
    last = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"][-1]
    later = NOTEBOOKS[NOTEBOOKS.index(path) + 1:]
    expected = f"]({later[0].name})" if later else "](../README.md#the-notebooks)"
    assert expected in last.source, f"{path.name}: the last cell should link to {expected[2:-1]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_printed_text_is_one_block_per_cell(path):
    """A web viewer draws each stored stream output as its own block: a line printed in two
    parts (`print(label, end=" ")`, then the rest) must be stored as one output to read right."""
    split = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        outputs = cell.get("outputs", [])
        for a, b in zip(outputs, outputs[1:]):
            if a.output_type == b.output_type == "stream" and a.name == b.name:
                split.append(f"cell {i}")
                break
    assert not split, f"{path.name}: stream outputs not coalesced in {split}; {FIX}"
