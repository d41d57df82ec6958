"""Figures: the live training plot, image grids, a function beside its derivative.

Every figure here is a `matplotlib.figure.Figure` made on its own, never through
pyplot's global state, so nothing leaks from one plot into the next and no figure is
shown twice. Functions return the figure; a notebook shows it as a cell's last value.
"""

import io
import math
import textwrap

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.data import text_labels

COLORS = {"train": "tab:blue", "test": "tab:orange"}   # dashed: train, solid: test


def figure_to_png(fig, dpi=80):
    """The figure as PNG bytes (for an `IPython.display.Image` or an `ipywidgets.Image`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _in_notebook():
    """True inside a Jupyter kernel (JupyterLab, VS Code, Colab, nbclient), else False."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LivePlot:
    """Training curves that redraw in place after every epoch, in any front end.

    In a notebook the figure is a PNG behind a display handle, replaced each epoch (the
    stored notebook keeps the last one). Given an `ipywidgets.Image`, it draws into that
    instead; with a `progress` bar and a `status` label it moves those too. In a plain
    Python script it prints one line per epoch. `ghosts` is a list of
    `(label, History)` from earlier runs, drawn faintly for comparison.
    """

    def __init__(self, num_epochs, *, title="", ghosts=(), image=None, progress=None,
                 status=None):
        self.num_epochs, self.title, self.ghosts = num_epochs, title, list(ghosts)
        self.image, self.progress, self.status = image, progress, status
        self.handle = None
        self.fig = None
        self.png = None

    def update(self, history):
        """Redraw from `history` (a `helpers.History`) and show it."""
        epoch = len(history.train_loss)
        if self.progress is not None:
            self.progress.max, self.progress.value = self.num_epochs, epoch
        if self.status is not None:
            done = history.message or epoch == self.num_epochs
            self.status.value = (history.summary() if done else
                                 f"epoch {epoch}/{self.num_epochs}: {history.summary()}")
        if self.fig is None or history.message:
            # Build the figure once (again only to write a message on it) and fix its layout:
            # later epochs just move the newest curves, which costs half as much to draw.
            self.fig = plot_history(history, title=self.title, ghosts=self.ghosts,
                                    num_epochs=self.num_epochs)
            self.png = figure_to_png(self.fig)
            self.fig.set_layout_engine("none")
        else:
            _move_newest_curves(self.fig, history, self.ghosts)
            self.png = figure_to_png(self.fig)
        if self.image is not None:
            self.image.value = self.png
        elif _in_notebook():
            from IPython.display import Image, display
            if self.handle is None:
                self.handle = display(Image(data=self.png), display_id=True)
            else:
                self.handle.update(Image(data=self.png))
        elif epoch and not history.message:
            print(f"epoch {epoch}/{self.num_epochs}: loss {history.train_loss[-1]:.4f}, "
                  f"train acc {history.train_acc[-1]:.3f}, test acc {history.test_acc[-1]:.3f}")


def plot_history(history, *, title="", ghosts=(), num_epochs=None):
    """Loss (left) and accuracy (right) per epoch, train dashed and test solid.

    A failed run's message is written on the figure. `ghosts` are earlier runs, drawn faintly.
    """
    fig = Figure(figsize=(8, 3), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    last = max([num_epochs or 1, len(history.train_loss)] +
               [len(h.train_loss) for _, h in ghosts])
    for label, old in ghosts:
        _draw_curves(ax_loss, ax_acc, old, alpha=0.25, label=label)
    _draw_curves(ax_loss, ax_acc, history, alpha=1.0)
    _set_loss_limits(ax_loss, _all_losses(history, ghosts))
    ax_loss.set(xlabel="epoch", ylabel="loss", xlim=(0.5, last + 0.5))
    ax_acc.set(xlabel="epoch", ylabel="accuracy", xlim=(0.5, last + 0.5), ylim=(0, 1))
    ax_loss.legend(loc="best", fontsize=8)
    ax_acc.legend(loc="best", fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs only
    if title:
        fig.suptitle(title)
    if history.message:
        ax_loss.text(0.5, 0.5, history.message.replace("; ", "\n"), transform=ax_loss.transAxes,
                     ha="center", va="center", color="tab:red", fontsize=9,
                     bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "tab:red"})
    return fig


def _move_newest_curves(fig, history, ghosts):
    """Give the run drawn last by `plot_history` its new points, and refit the loss axis."""
    ax_loss, ax_acc = fig.axes
    for ax, keys in ((ax_loss, ("train_loss", "test_loss")), (ax_acc, ("train_acc", "test_acc"))):
        for line, key in zip(ax.lines[-2:], keys):
            values = getattr(history, key)
            line.set_data(range(1, len(values) + 1), values)
    _set_loss_limits(ax_loss, _all_losses(history, ghosts))


def _all_losses(history, ghosts):
    """Every train and test loss of this run and the ghosts (to fit the loss axis)."""
    runs = [h for _, h in ghosts] + [history]
    return [v for h in runs for v in h.train_loss + h.test_loss]


def _draw_curves(ax_loss, ax_acc, history, alpha, label=None):
    """Train (dashed) and test (solid) curves; a ghost's `label` goes on its test accuracy."""
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split in ("train", "test"):
            values = getattr(history, f"{split}_{metric}")
            if label is None:
                name = f"{split} {metric}"
            else:        # a ghost is named once, on its test accuracy; long knob lists wrap
                name = textwrap.fill(label, 40) if (ax is ax_acc and split == "test") else None
            ax.plot(range(1, len(values) + 1), values, "o-" if split == "test" else "o--",
                    ms=3, color=COLORS[split], alpha=alpha, label=name)


def _set_loss_limits(ax, losses):
    """Limits that show every finite loss; a log scale when they span over 100x."""
    finite = [v for v in losses if math.isfinite(v) and v > 0]
    if not finite:
        ax.set_ylim(0, 1)
        return
    low, high = min(finite), max(finite)
    if high / low > 100:
        ax.set_yscale("log")
        ax.set_ylim(low / 1.5, high * 1.5)
    else:
        ax.set_ylim(0, high * 1.1)


def compare_histories(runs, *, title=""):
    """Several runs on one figure: `runs` maps a label to its `History`.

    Left: train loss; right: test accuracy (solid) and train accuracy (dashed). The legend
    sits outside the axes, so it never hides a curve.
    """
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    colors = [f"C{i}" for i in range(10)]
    for (label, h), color in zip(runs.items(), colors * 10):
        epochs = range(1, len(h.train_loss) + 1)
        note = " (diverged)" if h.diverged else " (stalled)" if h.stalled else ""
        ax_loss.plot(epochs, h.train_loss, "o-", ms=3, color=color, label=label + note)
        ax_acc.plot(epochs, h.test_acc, "o-", ms=3, color=color)
        ax_acc.plot(epochs, h.train_acc, "--", color=color, alpha=0.6)
    _set_loss_limits(ax_loss, [v for h in runs.values() for v in h.train_loss])
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (dashed: train)")
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs only
    if title:
        fig.suptitle(title)
    return fig


def show_images(images, labels=None, predictions=None, *, ncols=8, scale=1.4):
    """A grid of images titled with their true label, and the prediction when given.

    Wrong predictions are titled in red. `images` is a tensor `(N, 1, 28, 28)` or
    `(N, 28, 28)`; `labels` and `predictions` are class indices.
    """
    images = torch.as_tensor(images).detach().cpu().reshape(len(images), 28, 28)
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * scale, nrows * scale * 1.25), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    true_names = text_labels(labels) if labels is not None else [None] * n
    pred_names = text_labels(predictions) if predictions is not None else [None] * n
    for ax, img, true, pred in zip(axes, images, true_names, pred_names):
        ax.imshow(img.numpy(), cmap="gray_r")
        if pred is None:
            ax.set_title(true or "", fontsize=8)
        else:
            ax.set_title(f"{true}\n{pred}", fontsize=8,
                         color="black" if true == pred else "tab:red")
    for ax in axes:
        ax.axis("off")
    return fig


def plot_function(fn, *, name="", x=None):
    """`fn(x)` beside its derivative, the derivative computed by autograd."""
    x = torch.linspace(-5, 5, 201) if x is None else x.detach().clone()
    x.requires_grad_(True)
    y = fn(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    fig = Figure(figsize=(7, 2.6), layout="constrained")
    ax_f, ax_d = fig.subplots(1, 2, sharex=True)
    ax_f.plot(x.detach(), y.detach(), color="tab:blue")
    ax_d.plot(x.detach(), dy, color="tab:red")
    ax_f.set(title=f"{name}(x)" if name else "f(x)", xlabel="x")
    ax_d.set(title=f"{name}'(x)" if name else "f'(x)", xlabel="x")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.grid(alpha=0.3)
    return fig
