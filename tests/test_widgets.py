"""The playground: sliders, the Train button, live redraws, and no tracebacks."""

import time

import ipywidgets as widgets
import pytest
import torch
from torch import nn

from helpers import figure_controls, load_fashion_mnist, plot_function, set_seed, train
from helpers import widgets as widgets_module
from helpers.widgets import training_controls


def tiny_run(lr, batch_size, num_epochs, hidden=16, plot=True):
    set_seed(0)
    train_iter, test_iter = load_fashion_mnist(batch_size, num_train=1000, device="cpu")
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    return train(net, train_iter, test_iter, nn.CrossEntropyLoss(), num_epochs,
                 torch.optim.SGD(net.parameters(), lr=lr), plot=plot)


def parts(box):
    sliders, (button, progress), status, config, image = (
        box.children[0], box.children[1].children, *box.children[2:])
    controls = {c.description: c for c in sliders.children}
    return controls, button, progress, status, config, image


def test_sliders_cover_the_promised_ranges():
    controls, *_ = parts(training_controls(tiny_run, hidden=(8, 64, 8, 16)))
    lr, batch, epochs = controls["lr"], controls["batch size"], controls["epochs"]
    assert (lr.base, lr.min, lr.max) == (10, -3, 1)
    assert batch.options[0] == 16 and batch.options[-1] == 4096
    assert (epochs.min, epochs.max) == (1, 50)
    assert controls["hidden"].value == 16 and controls["hidden"].max == 64


def test_train_button_trains_redraws_and_comes_back():
    box = training_controls(tiny_run, lr=0.5, batch_size=128, num_epochs=2)
    controls, button, progress, status, config, image = parts(box)
    controls["epochs"].value = 3
    before = image.value
    button.click()
    assert image.value != before and bytes(image.value).startswith(b"\x89PNG")
    assert progress.value == progress.max == 3
    assert not button.disabled
    assert "test acc" in status.value
    assert config.value == "<code>tiny_run(lr=0.5, batch_size=128, num_epochs=3)</code>"


def test_button_is_disabled_while_training_runs():
    states = []

    def spy(**kwargs):
        states.append(button.disabled)
        return tiny_run(**kwargs)

    box = training_controls(spy, num_epochs=1)
    _, button, *_ = parts(box)
    button.click()
    assert states == [True] and not button.disabled


def test_an_absurd_learning_rate_gives_a_message_not_a_traceback():
    box = training_controls(tiny_run, num_epochs=3)
    controls, button, progress, status, _, image = parts(box)
    controls["lr"].value = 10.0
    button.click()
    assert "diverged" in status.value or "not learning" in status.value
    assert bytes(image.value).startswith(b"\x89PNG") and not button.disabled


def test_an_error_in_the_training_function_becomes_one_line():
    def broken(**kwargs):
        raise RuntimeError("out of ideas")

    box = training_controls(broken)
    _, button, _, status, _, _ = parts(box)
    button.click()
    assert status.value == "error: RuntimeError: out of ideas"
    assert not button.disabled


def test_earlier_runs_stay_as_labelled_ghosts():
    box = training_controls(tiny_run, num_epochs=1)
    controls, button, *_ = parts(box)
    seen_ghosts = []
    original = tiny_run

    def spy(plot, **kwargs):
        seen_ghosts.append([label for label, _ in plot.ghosts])
        return original(plot=plot, **kwargs)

    box = training_controls(spy, num_epochs=1)
    controls, button, *_ = parts(box)
    for lr in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        controls["lr"].value = lr
        button.click()
    assert seen_ghosts[0] == [] and len(seen_ghosts[1]) == 1
    assert len(seen_ghosts[-1]) == 4                       # at most four kept
    assert seen_ghosts[-1][-1].startswith("lr=0.6")


def test_knob_specs():
    box = training_controls(tiny_run, act=["relu", "tanh"], p=(0.0, 0.9, 0.1, 0.5))
    controls, *_ = parts(box)
    assert controls["act"].options == ("relu", "tanh") and controls["p"].value == 0.5
    with pytest.raises(ValueError, match="knob 'bad'"):
        training_controls(tiny_run, bad="nonsense")


def test_figure_controls_redraws_on_change_and_reports_errors():
    def draw(name, scale):
        if scale == 0:
            raise ValueError("scale must not be 0")
        return plot_function(lambda x: scale * getattr(torch, name)(x), name=name)

    box = figure_controls(draw, name=["tanh", "sigmoid"], scale=(0, 3, 1, 1))
    (name, scale), status, image = box.children[0].children, box.children[1], box.children[2]
    first = image.value
    assert bytes(first).startswith(b"\x89PNG")
    name.value = "sigmoid"
    assert image.value != first and status.value == ""
    scale.value = 0
    assert status.value == "error: ValueError: scale must not be 0"


def sliders_of(box):
    return [w for w in _all_widgets(box) if hasattr(w, "continuous_update")]


def _all_widgets(box):
    for child in getattr(box, "children", ()):
        yield child
        yield from _all_widgets(child)


def test_every_slider_acts_on_release_not_while_dragged():
    own = widgets.IntSlider(min=1, max=5)
    box = training_controls(tiny_run, hidden=(8, 64, 8, 16), width=own, act=["relu", "tanh"])
    sliders = sliders_of(box)
    assert len(sliders) >= 5 and not any(s.continuous_update for s in sliders)
    box = figure_controls(lambda scale, n: plot_function(torch.tanh), scale=(0.0, 3.0, 0.5),
                          n=widgets.IntSlider(min=1, max=5))
    sliders = sliders_of(box)
    assert len(sliders) == 2 and not any(s.continuous_update for s in sliders)


def test_a_slow_redraw_says_drawing_while_it_runs():
    def slow(scale):
        time.sleep(0.35)
        return plot_function(lambda x: scale * torch.tanh(x), name="tanh")

    box = figure_controls(slow, scale=(1, 3, 1, 1))
    (scale,), status = box.children[0].children, box.children[1]
    seen = []
    status.observe(lambda change: seen.append(change["new"]), names="value")
    scale.value = 2
    assert seen == ["drawing...", ""]


def test_a_fast_redraw_does_not_flash_a_message(monkeypatch):
    monkeypatch.setattr(widgets_module, "SLOW_REDRAW_S", 60.0)   # "fast", however busy the CPU
    box = figure_controls(lambda scale: plot_function(torch.tanh), scale=(1, 3, 1, 1))
    (scale,), status = box.children[0].children, box.children[1]
    seen = []
    status.observe(lambda change: seen.append(change["new"]), names="value")
    scale.value = 2
    assert seen == []


def test_plots_are_shown_at_their_natural_size():
    box = training_controls(tiny_run)
    image = box.children[-1]
    assert image.layout.max_width is None and image.layout.width is None
    box = figure_controls(lambda scale: plot_function(torch.tanh), scale=(1, 3, 1, 1))
    assert box.children[2].layout.max_width is None


class StopAtEpoch(nn.Module):
    """A network that trains normally until the kernel is interrupted during epoch `stop`."""

    def __init__(self, stop, batches_per_epoch):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
        self.calls, self.stop, self.per_epoch = 0, stop, batches_per_epoch

    def forward(self, X):
        if self.training:
            self.calls += 1
            if self.calls == (self.stop - 1) * self.per_epoch + 2:
                raise KeyboardInterrupt          # what the kernel's ■ button does
        return self.net(X)


def interrupted_run(lr, batch_size, num_epochs, stop=2, plot=True):
    set_seed(0)
    train_iter, test_iter = load_fashion_mnist(batch_size, num_train=1000, device="cpu")
    net = StopAtEpoch(stop, len(train_iter))
    return train(net, train_iter, test_iter, nn.CrossEntropyLoss(), num_epochs,
                 torch.optim.SGD(net.parameters(), lr=lr), plot=plot)


def test_an_interrupt_during_train_ends_the_run_cleanly():
    box = training_controls(interrupted_run, num_epochs=5, stop=(1, 5, 1, 3))
    controls, button, progress, status, _, image = parts(box)
    button.click()                                          # must not raise
    assert status.value == "stopped at epoch 2 of 5"
    assert not button.disabled and progress.value == 2
    assert bytes(image.value).startswith(b"\x89PNG")


def test_the_stopped_run_joins_the_earlier_runs():
    ghosts = []

    def run(plot, **kwargs):
        ghosts.append([(label, len(h.train_loss)) for label, h in plot.ghosts])
        return interrupted_run(plot=plot, **kwargs)

    box = training_controls(run, num_epochs=4, stop=(1, 4, 1, 2))
    _, button, *_ = parts(box)
    button.click()
    button.click()
    assert ghosts[0] == [] and len(ghosts[1]) == 1 and ghosts[1][0][1] == 1


def test_an_interrupt_before_the_first_epoch_ends_keeps_no_ghost():
    ghosts = []

    def run(plot, **kwargs):
        ghosts.append(len(plot.ghosts))
        return interrupted_run(plot=plot, **kwargs)

    box = training_controls(run, num_epochs=3, stop=(1, 3, 1, 1))
    _, button, _, status, *_ = parts(box)
    button.click()
    assert status.value == "stopped at epoch 0 of 3"
    button.click()
    assert ghosts == [0, 0] and not button.disabled


def test_train_called_from_a_cell_lets_the_interrupt_through():
    with pytest.raises(KeyboardInterrupt):
        interrupted_run(lr=0.1, batch_size=256, num_epochs=3, stop=2, plot=False)
