"""The series teaches in order: no notebook uses an idea before the notebook that teaches it.

Each idea below has the notebook that teaches it and the patterns that show it is being
used: in code (a call, a class, a keyword) and, for some, in the prose. An earlier
notebook may point forward to it ("notebook 10 opens this up"): a markdown cell that names
the teaching notebook, or a later one, may mention the idea. Using it is not allowed.
This would have caught the old series' problems: training with `train`, SGD and
cross-entropy before any of them was taught, and momentum used before it was explained.
"""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

# idea: (the notebook that teaches it, code pattern, prose pattern or None)
IDEAS = {
    "training with helpers.train": ("00", r"\btrain\(|training_controls\(", None),
    "cross-entropy": ("00", r"CrossEntropyLoss|cross_entropy", r"cross-entropy"),
    "softmax": ("00", r"softmax", r"\bsoftmax"),
    "stochastic gradient descent": ("00", r"optim\.SGD|\bSGD\(", r"gradient descent"),
    "the epoch": ("00", r"num_epochs|\bepochs?\b", r"\bepochs?\b"),
    "the backward pass by hand": ("02", r"\bdW1\b|\bdZ\b", None),
    "nn.Sequential and nn.Module": ("03", r"nn\.Sequential|nn\.Module\b", None),
    "saving a state_dict": ("03", r"state_dict", None),
    "validation and K-fold": ("04", r"k_fold|kfold|KFold", r"\bK-fold|cross-validation"),
    "regularization": ("04", None, r"\bregulari[sz]"),
    "weight decay": ("05", r"weight_decay", r"weight decay"),
    "dropout": ("06", r"[Dd]ropout", r"\bdropout"),
    "the per-layer health check": ("07", r"network_health|plot_health", None),
    "gradient clipping": ("07", r"clip_grad", r"\bclipping"),
    "Xavier and Kaiming initialization": ("08", r"xavier|kaiming", r"\bXavier|\bKaiming"),
    "log-sum-exp": ("09", r"logsumexp|log_sum_exp", r"log-sum-exp"),
    "temperature": ("09", r"temperature", r"\btemperature"),
    "momentum": ("10", r"momentum", r"\bmomentum"),
    "adaptive optimizers (Adam and its family)": (
        "10", r"\bAdam|\bAdagrad|RMSprop|Adadelta|lr_scheduler", r"\bAdam\b|\bAdamW\b|RMSprop"),
}


def number(path):
    return path.name[:2]


def code_without_comments(source):
    """Code with comments and strings' prose left in: only `#` comments are dropped."""
    return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def points_forward(text, teacher):
    """True if the markdown names the teaching notebook or a later one ("notebook 10")."""
    return any(n >= teacher for n in re.findall(r"notebook (\d\d)", text, re.IGNORECASE))


def early_uses(path):
    """[(idea, cell index, what)] for ideas this notebook uses before they are taught."""
    found = []
    nb = nbformat.read(path, as_version=4)
    for idea, (teacher, code, prose) in IDEAS.items():
        if number(path) >= teacher:
            continue
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and code:
                match = re.search(code, code_without_comments(cell.source))
                if match:
                    found.append((idea, i, f"code uses {match.group(0)!r}"))
                    break
            if cell.cell_type == "markdown" and prose:
                match = re.search(prose, cell.source, re.IGNORECASE)
                if match and not points_forward(cell.source, teacher):
                    found.append((idea, i, f"prose relies on {match.group(0)!r}"))
                    break
    return found


def test_the_series_is_numbered_from_00():
    assert NOTEBOOKS and number(NOTEBOOKS[0]) == "00"
    assert [number(p) for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_idea_is_used_before_the_notebook_that_teaches_it(path):
    early = early_uses(path)
    assert not early, f"{path.name} uses ideas taught later: " + "; ".join(
        f"{idea} (taught in {IDEAS[idea][0]}) in cell {i}: {what}" for idea, i, what in early)


def test_the_order_check_catches_training_before_it_is_taught(tmp_path):
    """The check itself: a notebook 00 that trains with momentum would fail."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("We keep a running average of the gradients."),
                nbformat.v4.new_code_cell("opt = torch.optim.SGD(net.parameters(), lr=0.1, "
                                          "momentum=0.9)")]
    path = tmp_path / "00_example.ipynb"
    nbformat.write(nb, path)
    assert [idea for idea, _, _ in early_uses(path)] == ["momentum"]
    nb.cells[1].source = "history = train(net, train_iter, test_iter, loss, 3, updater)"
    path = tmp_path / "01_example.ipynb"
    nbformat.write(nb, path)
    assert early_uses(path) == []                # 01 comes after 00, which teaches train
