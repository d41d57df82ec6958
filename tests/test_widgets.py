"""The playground: sliders, the Train button, live redraws, and no tracebacks."""

import pytest
import torch
from torch import nn

from helpers import figure_controls, load_fashion_mnist, plot_function, set_seed, train
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
    assert len(seen_ghosts[-1]) == 5                       # at most five kept
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
