"""Execute the notebooks top to bottom in fresh kernels, store them, and time them.

    python scripts/execute_notebooks.py                 # every notebook, stored back in place
    python scripts/execute_notebooks.py 03 05           # only those whose name starts so
    python scripts/execute_notebooks.py --no-write      # time the series, change nothing

Notebooks run on the CPU (`HELPERS_DEVICE=cpu`) unless `--device` says otherwise, so the
stored outputs are the same on every machine. Each stored notebook gets a fingerprint of
its code and of `helpers/` in its metadata; `tests/test_stored_notebooks.py` fails when
either has changed since the notebook was last executed.
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def fingerprint(nb):
    """A hash of the notebook's code cells and of the helpers package's source."""
    digest = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    for path in sorted((ROOT / "helpers").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def execute(path, device="cpu", timeout=600):
    """Run one notebook in a fresh kernel; return (notebook, seconds)."""
    nb = nbformat.read(path, as_version=4)
    env_before = os.environ.get("HELPERS_DEVICE")
    if device:
        os.environ["HELPERS_DEVICE"] = device
    else:
        os.environ.pop("HELPERS_DEVICE", None)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}},
                                store_widget_state=True,
                                coalesce_streams=True)   # one block per cell, as Jupyter shows it
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        if env_before is None:
            os.environ.pop("HELPERS_DEVICE", None)
        else:
            os.environ["HELPERS_DEVICE"] = env_before
    nb.metadata["execution"] = {"fingerprint": fingerprint(nb)}
    return nb, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="prefixes of notebook names (default: all)")
    parser.add_argument("--no-write", action="store_true", help="time only; store nothing")
    parser.add_argument("--device", default="cpu",
                        help="HELPERS_DEVICE for the kernels; '' leaves it unset (auto)")
    args = parser.parse_args()
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb")
                   if not args.names or any(p.name.startswith(n) for n in args.names))
    if not paths:
        sys.exit("no notebook matches " + " ".join(args.names))
    import torch
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = args.device or f"{auto} (auto)"
    rows, total = [], 0.0
    for path in paths:
        nb, seconds = execute(path, device=args.device)
        total += seconds
        rows.append((path.name, seconds))
        print(f"{path.name:40s} {seconds:7.1f} s", flush=True)
        if not args.no_write:
            nbformat.write(nb, path)
    print("\n| notebook | seconds | device |\n|---|---:|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {device} |")
    print(f"| **all {len(rows)}** | **{total:.1f}** | {device} |")


if __name__ == "__main__":
    main()
