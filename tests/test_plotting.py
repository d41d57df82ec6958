"""LivePlot and the static figures."""

import io
import math

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image
from torch import nn

from helpers import (
    History,
    LivePlot,
    compare_histories,
    compare_runs,
    network_health,
    plot_distributions,
    plot_function,
    plot_health,
    plot_history,
    plot_update_ratios,
    show_images,
)
from helpers.plotting import _set_loss_limits, figure_to_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def history(n=3, loss=(2.0, 1.0, 0.5), message=""):
    return History(train_loss=list(loss[:n]), train_acc=[0.3, 0.6, 0.8][:n],
                   test_acc=[0.3, 0.55, 0.7][:n], test_loss=[2.2, 1.3, 1.4][:n],
                   seconds=[1.0] * n, num_epochs=5, message=message)


def test_loss_limits_contain_every_finite_loss():
    fig = Figure()
    ax = fig.subplots()
    _set_loss_limits(ax, [2.3, 0.4, float("nan"), 1.1])
    low, high = ax.get_ylim()
    assert low <= 0.4 and high >= 2.3 and ax.get_yscale() == "linear"


def test_loss_limits_switch_to_log_when_losses_span_orders_of_magnitude():
    fig = Figure()
    ax = fig.subplots()
    _set_loss_limits(ax, [2.3, 5e4, 0.2, float("inf")])
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log" and low <= 0.2 and high >= 5e4


def test_plot_history_keeps_accuracy_axis_whole_and_writes_the_message():
    fig = plot_history(history(message="diverged at epoch 3; try a smaller learning rate"),
                       num_epochs=5)
    ax_loss, ax_acc = fig.axes
    assert ax_acc.get_ylim() == (0, 1)
    assert ax_loss.get_xlim()[1] >= 5
    assert "diverged at epoch 3" in fig.get_suptitle()


def test_liveplot_draws_into_an_image_widget_with_progress_and_status():
    image, progress, status = widgets.Image(), widgets.IntProgress(), widgets.Label()
    plot = LivePlot(5, image=image, progress=progress, status=status, max_share=1e9)
    plot.update(history(1))
    first = image.value
    assert bytes(first).startswith(PNG_MAGIC)
    assert progress.value == 1 and progress.max == 5
    assert status.value.startswith("epoch 1 of 5: test acc 0.300")
    assert "about 4 s left" in status.value and "interrupt" in status.value
    plot.update(history(2))
    assert image.value != first and progress.value == 2
    assert plot.history.train_loss == [2.0, 1.0]


def test_liveplot_prints_one_line_per_epoch_outside_a_notebook(capsys):
    plot = LivePlot(3)
    plot.update(history(1))
    plot.update(history(2))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/3: loss 1.0000")
    assert plot.png is None                                # nothing to show it: not drawn


def test_liveplot_skips_redraws_that_would_cost_more_than_its_share():
    image = widgets.Image()
    plot = LivePlot(3, image=image)                        # max_share 10 %: epochs here take 0 s
    drawn = []
    image.observe(lambda change: drawn.append(change["new"]), names="value")
    for n in (1, 2):
        plot.update(history(n))
    assert len(drawn) == 1                                 # the second came too soon after
    plot.update(history(3))
    assert len(drawn) == 2                                 # the last epoch is always drawn
def test_ghosts_are_drawn_faintly_with_their_labels():
    plot = plot_history(history(2), ghosts=[("lr=1", history(3)), ("lr=0.01", history(1))])
    ax_loss, ax_acc = plot.axes
    labels = [line.get_label() for line in ax_acc.get_lines()]
    assert "lr=1" in labels and "lr=0.01" in labels
    faint = [line for line in ax_acc.get_lines() if line.get_label() == "lr=1"]
    assert faint[0].get_alpha() < 0.5
    assert len(ax_loss.lines) == len(ax_acc.lines) == 2 + 2    # ghosts: test curves only
    legend = [t.get_text() for t in plot.legends[0].get_texts()]
    assert legend == ["train", "test", "lr=1", "lr=0.01"]


def test_compare_histories_has_a_curve_per_run_and_flags_failures():
    bad = history(1)
    bad.diverged = True
    fig = compare_histories({"a": history(3), "b": bad})
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["a", "b (diverged)"]


def test_show_images_titles_wrong_predictions_in_red():
    images = torch.rand(3, 1, 28, 28)
    fig = show_images(images, labels=[0, 1, 2], predictions=[0, 5, 2], ncols=3)
    titles = [ax.title for ax in fig.axes[:3]]
    assert titles[0].get_text() == "t-shirt\nt-shirt"
    assert titles[1].get_text() == "trouser\nsandal" and titles[1].get_color() == "tab:red"


def test_plot_function_draws_the_autograd_derivative():
    fig = plot_function(torch.sigmoid, name="sigmoid")
    x, dy = fig.axes[1].get_lines()[0].get_data()
    s = torch.sigmoid(torch.as_tensor(x))
    assert max(abs(float(a) - float(b)) for a, b in zip(dy, s * (1 - s))) < 1e-6
    assert math.isclose(max(dy), 0.25, rel_tol=1e-3)


def test_liveplot_moves_the_curves_of_the_figure_it_built():
    plot = LivePlot(5, image=widgets.Image(), max_share=1e9)
    plot.update(history(1))
    fig = plot.fig
    plot.update(history(2, loss=(2.0, 1.0)))
    assert plot.fig is fig                                  # built once, then updated
    train_loss, test_loss = fig.axes[0].lines[-2:]
    assert list(train_loss.get_ydata()) == [2.0, 1.0]
    assert list(test_loss.get_ydata()) == [2.2, 1.3]
    assert list(fig.axes[1].lines[-1].get_ydata()) == [0.3, 0.55]


def test_liveplot_builds_the_axes_again_when_a_loss_leaves_them():
    plot = LivePlot(5, image=widgets.Image(), max_share=1e9)
    plot.update(history(1))                                # losses 2.0 and 2.2
    fig = plot.fig
    climbing = history(2)
    climbing.test_loss = [2.2, 9.0]
    plot.update(climbing)
    assert plot.fig is not fig and plot.fig.axes[0].get_ylim()[1] >= 9.0


def test_the_live_figure_shows_the_same_picture_as_a_full_drawing():
    """Drawing only the newest curves over the saved background gives the full figure."""
    plot = LivePlot(5, image=widgets.Image(), max_share=1e9)
    for n in (1, 2, 3):
        plot.update(history(n))
    fresh = plot_history(history(3), num_epochs=5)
    ours = np.asarray(Image.open(io.BytesIO(plot.png)).convert("RGB"))
    full = np.asarray(Image.open(io.BytesIO(figure_to_png(fresh))).convert("RGB"))
    assert ours.shape == full.shape
    assert (ours != full).any(axis=2).mean() < 0.001       # under 0.1 % of the pixels differ


def test_plot_history_draws_train_dashed_and_test_solid_in_both_panels():
    fig = plot_history(history(3))
    for ax in fig.axes:
        styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
        assert list(styles.values()) == ["--", "-"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train", "test"]


def test_plot_history_keeps_its_legend_off_the_axes():
    fig = plot_history(history(3), ghosts=[(f"lr={i}", history(2)) for i in range(4)])
    _legend_is_off_the_axes(fig, fig.legends[0])


def _legend_is_off_the_axes(fig, legend):
    FigureCanvasAgg(fig).draw()                             # lays the figure out for real
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())
        assert ax.get_legend() is None


def test_compare_histories_keeps_its_legend_off_the_axes():
    fig = compare_histories({f"run {i}": history(3) for i in range(7)})
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [f"run {i}" for i in range(7)]
    _legend_is_off_the_axes(fig, legend)


def _every_helper_figure():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 32),
                        nn.ReLU(), nn.Linear(32, 10))
    stats = network_health(net, torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
    failed = history(2, message="diverged at epoch 3 (batch loss 1e+04); try a smaller lr")
    ratios = [{f"w{i}": -3.0 + 0.1 * step for i in range(3)} for step in range(5)]
    return {
        "plot_history": plot_history(history(3), ghosts=[("lr=1, batch_size=256", history(2))]),
        "plot_history (failed)": plot_history(failed),
        "compare_histories": compare_histories({"a": history(3), "b": history(2)}),
        "compare_runs": compare_runs({"a": [history(3), history(2)], "b": [history(3)]}),
        "show_images": show_images(torch.rand(16, 1, 28, 28), [0] * 16, [9] * 16),
        "plot_function": plot_function(torch.tanh, name="tanh"),
        "plot_health": plot_health(stats, title="health"),
        "plot_distributions": plot_distributions(stats, title="outputs"),
        "plot_update_ratios": plot_update_ratios(ratios, title="updates"),
    }


@pytest.mark.parametrize("name", list(_every_helper_figure()))
def test_every_text_in_every_helper_figure_is_10_pt_or_more(name):
    fig = _every_helper_figure()[name]
    FigureCanvasAgg(fig).draw()                             # makes the tick labels
    small = {(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
             if t.get_text().strip() and t.get_visible() and t.get_fontsize() < 10}
    assert not small, f"{name}: text under 10 pt: {sorted(small)[:5]}"


@pytest.mark.parametrize("name", list(_every_helper_figure()))
def test_every_helper_figure_fits_jupyterlab_at_1280_px_unscaled(name):
    """At most 840 px wide as a notebook stores it (the inline backend crops to the drawn
    artists plus a margin), so JupyterLab at 1280 px shows it without scaling it down."""
    fig = _every_helper_figure()[name]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    width = Image.open(buf).size[0]
    assert fig.dpi >= 100 and width <= 840, f"{name} is {width} px wide"


def test_pngs_are_rendered_at_100_dpi_or_more():
    fig = plot_history(history(3))
    width, _ = Image.open(io.BytesIO(figure_to_png(fig))).size
    assert width >= 100 * fig.get_figwidth()
    plot = LivePlot(3, image=widgets.Image())
    plot.update(history(3))
    assert Image.open(io.BytesIO(plot.png)).size[0] >= 100 * plot.fig.get_figwidth()
