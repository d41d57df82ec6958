"""LivePlot and the static figures."""

import math

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from helpers import History, LivePlot, compare_histories, plot_function, plot_history, show_images
from helpers.plotting import _set_loss_limits

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
    texts = [t.get_text() for t in ax_loss.texts]
    assert any("diverged at epoch 3" in t for t in texts)


def test_liveplot_draws_into_an_image_widget_with_progress_and_status():
    image, progress, status = widgets.Image(), widgets.IntProgress(), widgets.Label()
    plot = LivePlot(5, image=image, progress=progress, status=status)
    plot.update(history(1))
    first = image.value
    assert bytes(first).startswith(PNG_MAGIC)
    assert progress.value == 1 and progress.max == 5
    assert status.value.startswith("epoch 1/5")
    plot.update(history(2))
    assert image.value != first and progress.value == 2


def test_liveplot_prints_one_line_per_epoch_outside_a_notebook(capsys):
    plot = LivePlot(3)
    plot.update(history(1))
    plot.update(history(2))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/3: loss 1.0000")
    assert plot.png.startswith(PNG_MAGIC)


def test_ghosts_are_drawn_faintly_with_their_labels():
    plot = plot_history(history(2), ghosts=[("lr=1", history(3)), ("lr=0.01", history(1))])
    ax_acc = plot.axes[1]
    labels = [line.get_label() for line in ax_acc.get_lines()]
    assert "lr=1" in labels and "lr=0.01" in labels
    faint = [line for line in ax_acc.get_lines() if line.get_label() == "lr=1"]
    assert faint[0].get_alpha() < 0.5


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
    plot = LivePlot(5, image=widgets.Image())
    plot.update(history(1))
    fig = plot.fig
    plot.update(history(3))
    assert plot.fig is fig                                  # built once, then updated
    train_loss, test_loss = fig.axes[0].lines[-2:]
    assert list(train_loss.get_ydata()) == [2.0, 1.0, 0.5]
    assert list(test_loss.get_ydata()) == [2.2, 1.3, 1.4]
    assert list(fig.axes[1].lines[-1].get_ydata()) == [0.3, 0.55, 0.7]
    assert fig.axes[0].get_ylim()[1] >= 2.2                 # the loss axis was refitted


def test_plot_history_draws_train_dashed_and_test_solid_in_both_panels():
    fig = plot_history(history(3))
    for ax, metric in zip(fig.axes, ("loss", "acc")):
        styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
        assert styles == {f"train {metric}": "--", f"test {metric}": "-"}
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(styles)


def test_compare_histories_keeps_its_legend_off_the_axes():
    fig = compare_histories({f"run {i}": history(3) for i in range(7)})
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [f"run {i}" for i in range(7)]
    fig.canvas.draw()
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())
        assert ax.get_legend() is None
