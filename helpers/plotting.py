"""Figures: the live training plot, image grids, a function beside its derivative.

Every figure here is a `matplotlib.figure.Figure` made on its own, never through
pyplot's global state, so nothing leaks from one plot into the next and no figure is
shown twice. Functions return the figure; a notebook shows it as a cell's last value.
Every text is 10 pt or more and legends sit outside the axes, so the figures read from
the back of a classroom.
"""

import io
import math
import textwrap
import time

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image as PILImage

from helpers.data import text_labels

COLORS = {"train": "tab:blue", "test": "tab:orange"}   # dashed: train, solid: test
GHOST_COLORS = ("tab:green", "tab:red", "tab:purple", "tab:brown")   # earlier runs, faint
DPI = 100          # PNGs are shown at their natural size: 100 dots per inch of figure
LEGEND_FONT = 10   # every text in these figures is 10 pt or more, readable on a projector
FIG_SIZE = (8.2, 3.2)   # inches: 820 x 320 px; JupyterLab shows 840 px of output unscaled at 1280


def figure_to_png(fig, dpi=DPI):
    """The figure as PNG bytes (for an `IPython.display.Image` or an `ipywidgets.Image`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _canvas_to_png(canvas):
    """What `canvas` holds now, as PNG bytes (fast compression: it is redrawn often)."""
    width, height = canvas.get_width_height()
    buf = io.BytesIO()
    PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba()).save(
        buf, format="png", compress_level=1)
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
    instead; with a `progress` bar and a `status` label it moves those too, and the status
    says how long is left and how to stop. In a plain Python script it prints one line per
    epoch. `ghosts` is a list of `(label, History)` from earlier runs, drawn faintly.

    Drawing is kept cheap: the axes, ticks and legend are drawn once and only the newest
    curves are drawn again each epoch; and when epochs are very fast, a redraw is skipped
    rather than let drawing take more than `max_share` of the time. The last epoch, and a
    failed run's message, are always drawn. `history` is the last `History` it was given.
    """

    def __init__(self, num_epochs, *, title="", ghosts=(), image=None, progress=None,
                 status=None, max_share=0.1):
        self.num_epochs, self.title, self.ghosts = num_epochs, title, list(ghosts)
        self.image, self.progress, self.status = image, progress, status
        self.max_share = max_share
        self.history = self.handle = self.fig = self.png = None
        self._live_lines, self._background = [], None
        self._drawn_at, self._draw_seconds = None, 0.0

    def update(self, history):
        """Show the state of `history` (a `helpers.History`): status, progress and figure."""
        self.history = history
        epoch = len(history.train_loss)
        final = bool(history.message) or epoch >= self.num_epochs
        if self.progress is not None:
            self.progress.max, self.progress.value = self.num_epochs, epoch
        if self.status is not None:
            self.status.value = history.summary() if final else self._progress_line(history)
        if self.image is None and not _in_notebook():
            if epoch and not history.message:
                print(f"epoch {epoch}/{self.num_epochs}: loss {history.train_loss[-1]:.4f}, "
                      f"train acc {history.train_acc[-1]:.3f}, "
                      f"test acc {history.test_acc[-1]:.3f}")
            return
        if not (final or self._redraw_is_due()):
            return
        start = time.perf_counter()
        self.png = self._render(history)
        self._show()
        self._drawn_at = time.perf_counter()
        self._draw_seconds = self._drawn_at - start

    def _progress_line(self, history):
        """`epoch 3 of 10: test acc 0.812 · 0.9 s per epoch, about 6 s left · stop: ■`."""
        epoch = len(history.train_loss)
        stop = "to stop, press ■ (interrupt the kernel)"
        if not epoch:
            return f"training... {stop}"
        per_epoch = float(np.mean(history.seconds))
        left = per_epoch * (self.num_epochs - epoch)
        return (f"epoch {epoch} of {self.num_epochs}: test acc {history.test_acc[-1]:.3f} · "
                f"{per_epoch:.2g} s per epoch, about {_duration(left)} left · {stop}")

    def _redraw_is_due(self):
        """False while drawing now would make drawing more than `max_share` of the time."""
        if self._drawn_at is None:
            return True
        return (time.perf_counter() - self._drawn_at) * self.max_share >= self._draw_seconds

    def _render(self, history):
        """PNG bytes of the figure: built (axes, ticks, legend) only when the axes must
        change, and otherwise just the newest curves drawn over the saved background."""
        losses = _all_losses(history, self.ghosts)
        if self.fig is None or history.message or not _losses_fit(self.fig.axes[0], losses):
            self.fig = plot_history(history, title=self.title, ghosts=self.ghosts,
                                    num_epochs=self.num_epochs)
            canvas = FigureCanvasAgg(self.fig)
            if history.message:              # a finished, failed run: draw it all once
                canvas.draw()
                self._background = None
                return _canvas_to_png(canvas)
            self._live_lines = [line for ax in self.fig.axes for line in ax.lines[-2:]]
            for line in self._live_lines:
                line.set_animated(True)      # left out of canvas.draw(): drawn below
            canvas.draw()
            self._background = canvas.copy_from_bbox(self.fig.bbox)
        else:
            self.fig.canvas.restore_region(self._background)
            _move_newest_curves(self.fig, history)
        for line in self._live_lines:
            line.axes.draw_artist(line)
        return _canvas_to_png(self.fig.canvas)

    def _show(self):
        if self.image is not None:
            self.image.value = self.png
            return
        from IPython.display import Image, display
        if self.handle is None:
            self.handle = display(Image(data=self.png), display_id=True)
        else:
            self.handle.update(Image(data=self.png))


def _duration(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def plot_history(history, *, title="", ghosts=(), num_epochs=None):
    """Loss (left) and accuracy (right) per epoch, train dashed and test solid.

    A failed run's message is written above the panels, in red. `ghosts` are earlier runs:
    their test curves are drawn faintly, one colour each, named in the legend. The legend
    sits outside the axes, so it never hides a curve.
    """
    fig = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    last = max([num_epochs or 1, len(history.train_loss)] +
               [len(h.train_loss) for _, h in ghosts])
    for (label, old), color in zip(ghosts, GHOST_COLORS * 10):
        _draw_curves(ax_loss, ax_acc, old, splits=("test",), color=color, alpha=0.45,
                     label=textwrap.fill(label, 24))
    _draw_curves(ax_loss, ax_acc, history, splits=("train", "test"))
    _set_loss_limits(ax_loss, _all_losses(history, ghosts))
    ax_loss.set(xlabel="epoch", ylabel="loss", xlim=(0.5, last + 0.5))
    ax_acc.set(xlabel="epoch", ylabel="accuracy", xlim=(0.5, last + 0.5), ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs only
    handles = ax_loss.lines[len(ghosts):] + ax_acc.lines[:len(ghosts)]
    fig.legend(handles=handles, loc="outside right upper", fontsize=LEGEND_FONT)
    if history.message:                       # above the panels, where it hides no curve
        message = f"{title}: {history.message}" if title else history.message
        fig.suptitle(textwrap.fill(message, 80), color="tab:red")
    elif title:
        fig.suptitle(title)
    return fig


def _move_newest_curves(fig, history):
    """Give the run drawn last by `plot_history` (train and test) its new points."""
    ax_loss, ax_acc = fig.axes
    for ax, keys in ((ax_loss, ("train_loss", "test_loss")), (ax_acc, ("train_acc", "test_acc"))):
        for line, key in zip(ax.lines[-2:], keys):
            values = getattr(history, key)
            line.set_data(range(1, len(values) + 1), values)


def _all_losses(history, ghosts):
    """Every loss drawn: this run's train and test losses, and the ghosts' test losses."""
    return history.train_loss + history.test_loss + [v for _, h in ghosts for v in h.test_loss]


def _draw_curves(ax_loss, ax_acc, history, splits, color=None, alpha=1.0, label=None):
    """Train (dashed) and test (solid) curves of one run in both panels.

    The current run is named `train`/`test` on its loss curves; a ghost is named `label`
    once, on its test accuracy.
    """
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split in splits:
            values = getattr(history, f"{split}_{metric}")
            name = split if label is None else (label if ax is ax_acc else None)
            ax.plot(range(1, len(values) + 1), values, "o-" if split == "test" else "o--",
                    ms=4, color=color or COLORS[split], alpha=alpha, label=name)


def _loss_limits(losses):
    """`(scale, (low, high))` that show every finite loss: log when they span over 100x."""
    finite = [v for v in losses if math.isfinite(v) and v > 0]
    if not finite:
        return "linear", (0, 1)
    low, high = min(finite), max(finite)
    if high / low > 100:
        return "log", (low / 1.5, high * 1.5)
    return "linear", (0, high * 1.1)


def _set_loss_limits(ax, losses):
    scale, limits = _loss_limits(losses)
    ax.set_yscale(scale)
    ax.set_ylim(*limits)


def _losses_fit(ax, losses):
    """True if the loss axis, as it is, still shows every loss on the right scale."""
    scale, _ = _loss_limits(losses)
    low, high = ax.get_ylim()
    finite = [v for v in losses if math.isfinite(v) and v > 0]
    return scale == ax.get_yscale() and all(low <= v <= high for v in finite)


def compare_histories(runs, *, title=""):
    """Several runs on one figure: `runs` maps a label to its `History`.

    Left: train loss; right: test accuracy (solid) and train accuracy (dashed). The legend
    sits outside the axes, so it never hides a curve.
    """
    fig = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
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
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside right upper",
               fontsize=LEGEND_FONT)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # whole epochs only
    if title:
        fig.suptitle(title)
    return fig


def compare_runs(runs, *, metrics=("train_loss", "test_loss"), title=""):
    """Settings side by side, each trained with several seeds, the spread shown.

    `runs` maps a label to a list of `History`, one per seed (use the same seeds for every
    label, so that the runs are paired). One panel per metric (`train_loss`, `test_loss`,
    `train_acc` or `test_acc`): each label's median over seeds as a line with markers, and
    a band from its lowest to its highest seed. Up to six labels read well; a label whose
    runs diverged or stalled says how many. The legend sits outside the axes.
    """
    fig = Figure(figsize=(FIG_SIZE[0], 3.2 if len(metrics) > 1 else 3.0), dpi=DPI,
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for (label, histories), color in zip(runs.items(), [f"C{i}" for i in range(10)] * 10):
        failed = sum(h.diverged or h.stalled for h in histories)
        name = label + (f" ({failed} of {len(histories)} failed)" if failed else "")
        for ax, metric in zip(axes, metrics):
            values = _padded([getattr(h, metric) for h in histories])
            if values.shape[1] == 0:
                continue
            epochs = np.arange(1, values.shape[1] + 1)
            with np.errstate(all="ignore"):
                low, mid, high = (np.nanmin(values, 0), np.nanmedian(values, 0),
                                  np.nanmax(values, 0))
            ax.fill_between(epochs, low, high, color=color, alpha=0.2, lw=0)
            ax.plot(epochs, mid, "o-", ms=4, color=color, label=name if ax is axes[0] else None)
    for ax, metric in zip(axes, metrics):
        if metric.endswith("loss"):
            _fit_loss_axis(ax, [v for hs in runs.values() for h in hs
                                for v in getattr(h, metric)])
        ax.set(xlabel="epoch", ylabel=metric.replace("_", " ").replace("acc", "accuracy"))
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper",
               fontsize=LEGEND_FONT, title="median, band: all seeds", title_fontsize=LEGEND_FONT)
    if title:
        fig.suptitle(title)
    return fig


def _fit_loss_axis(ax, losses):
    """Like `_set_loss_limits`, but a linear axis spans just the losses (not from 0), so
    settings that end close together can still be told apart."""
    _set_loss_limits(ax, losses)
    finite = [v for v in losses if math.isfinite(v) and v > 0]
    if finite and ax.get_yscale() == "linear":
        low, high = min(finite), max(finite)
        pad = 0.08 * (high - low) or 0.05 * high
        ax.set_ylim(max(0, low - pad), high + pad)


def _padded(series):
    """Lists of different lengths as one array, the missing epochs as nan."""
    width = max((len(s) for s in series), default=0)
    return np.array([list(s) + [np.nan] * (width - len(s)) for s in series], dtype=float)


def show_images(images, labels=None, predictions=None, *, ncols=8, scale=1.0):
    """A grid of images titled with their true label, and the prediction when given.

    Wrong predictions are titled in red. `images` is a tensor `(N, 1, 28, 28)` or
    `(N, 28, 28)`; `labels` and `predictions` are class indices.
    """
    images = torch.as_tensor(images).detach().cpu().reshape(len(images), 28, 28)
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(ncols * scale, nrows * scale * 1.3), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    true_names = text_labels(labels) if labels is not None else [None] * n
    pred_names = text_labels(predictions) if predictions is not None else [None] * n
    for ax, img, true, pred in zip(axes, images, true_names, pred_names):
        ax.imshow(img.numpy(), cmap="gray_r")
        if pred is None:
            ax.set_title(true or "", fontsize=LEGEND_FONT)
        else:
            ax.set_title(f"{true}\n{pred}", fontsize=LEGEND_FONT,
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
    fig = Figure(figsize=(7, 2.6), dpi=DPI, layout="constrained")
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
