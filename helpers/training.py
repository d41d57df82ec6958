"""Device choice, seeding, and the training loop that every notebook shares."""

import math
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def default_device():
    """The fastest device here: CUDA, else Apple's MPS, else the CPU.

    Set the environment variable `HELPERS_DEVICE` (e.g. `cpu`) to choose it yourself;
    the stored notebooks are executed with `HELPERS_DEVICE=cpu`.
    """
    wanted = os.environ.get("HELPERS_DEVICE")
    if wanted:
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed):
    """Seed Python, NumPy and PyTorch (all devices), so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class History:
    """What happened during `train`, one entry per finished epoch."""

    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)  # rises while test_acc sits still: overfitting
    seconds: list = field(default_factory=list)   # wall time per epoch, evaluation included
    num_epochs: int = 0          # epochs asked for (more than were run if training stopped)
    diverged: bool = False       # the loss became inf/nan or exploded; training stopped
    stalled: bool = False        # accuracy stayed at chance
    message: str = ""            # one line that says how the run went

    def summary(self):
        """One line: speed and final test accuracy, or why the run went wrong."""
        if self.message:
            return self.message
        if not self.test_acc:
            return "no epoch finished"
        return (f"{len(self.test_acc)} epochs, {np.mean(self.seconds):.2f} s/epoch, "
                f"train acc {self.train_acc[-1]:.3f}, test acc {self.test_acc[-1]:.3f}")


def evaluate_accuracy(net, data_iter):
    """Fraction of examples in `data_iter` that `net` classifies correctly."""
    correct, _, total = _evaluate(net, data_iter)
    return float(correct) / total


def _evaluate(net, data_iter, loss=None):
    """Correct predictions and summed `loss` (tensors, left on the device), and the count."""
    if isinstance(net, nn.Module):
        net.eval()
    correct, loss_sum, total = 0, 0, 0
    with torch.no_grad():
        for X, y in data_iter:
            y_hat = net(X)
            correct = correct + (y_hat.argmax(dim=1) == y).sum()
            if loss is not None:
                loss_sum = loss_sum + loss(y_hat, y).mean() * y.numel()
            total += y.numel()
    return torch.as_tensor(correct), torch.as_tensor(loss_sum, dtype=torch.float32), total


def train(net, train_iter, test_iter, loss, num_epochs, updater, *, device=None, plot=True):
    """Train `net` for `num_epochs` and return a `History`.

    - `net`: an `nn.Module`, or a plain function of `X` (its parameters are yours to place).
    - `loss`: e.g. `nn.CrossEntropyLoss(reduction="none")`; we backpropagate the batch mean,
      so `"none"` and `"mean"` give the same training.
    - `updater`: a `torch.optim.Optimizer` or any object with the same `zero_grad()` and
      `step()` (a from-scratch SGD), or a function `updater(batch_size)` that steps the
      parameters from their `.grad` and zeroes them (the loss is already a batch mean).
    - `plot`: True draws a `LivePlot`; False draws nothing; any object with an
      `update(history)` method (e.g. a `LivePlot` you made) is called after every epoch.

    `history.train_loss` and `train_acc` are counted on the fly during each epoch, in
    training mode: with dropout they describe the thinned network, so the accuracy is lower
    than `evaluate_accuracy` gives. `test_loss` and `test_acc` are measured after each
    epoch, in evaluation mode.

    If the loss becomes inf/nan or grows past 10x the first batch's loss, training stops,
    `history.diverged` is set and one line is printed; nothing is raised. Numbers stay on
    the device during an epoch and are read back together at its end: a GPU waits once
    per epoch, not once per batch.
    """
    from helpers.plotting import LivePlot

    device = torch.device(device) if device is not None else _device_of(train_iter)
    if isinstance(net, nn.Module):
        net.to(device)
    if plot is True:
        plot = LivePlot(num_epochs)
    history = History(num_epochs=num_epochs)
    on_cpu = device.type == "cpu"   # on the CPU, reading a number back costs nothing
    first_loss = None
    for epoch in range(1, num_epochs + 1):
        start = time.perf_counter()
        if isinstance(net, nn.Module):
            net.train()
        loss_sum, correct, worst = torch.zeros(3, device=device)
        seen = 0
        for X, y in train_iter:
            # A no-op for our preloaded batches; a DataLoader (as in benchmarks/) gives CPU ones.
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            batch_loss = loss(y_hat, y).mean()
            if hasattr(updater, "step"):          # torch.optim, or a scratch class like it
                updater.zero_grad()
                batch_loss.backward()
                updater.step()
            else:
                batch_loss.backward()
                updater(X.shape[0])
            batch_loss = batch_loss.detach()
            if first_loss is None:
                first_loss, num_classes = batch_loss, y_hat.shape[-1]
            loss_sum += batch_loss * y.numel()
            correct += (y_hat.detach().argmax(dim=1) == y).sum()
            worst = torch.maximum(worst, batch_loss)          # NaN, once there, stays
            seen += y.numel()
            if on_cpu and _exploded(float(worst), float(first_loss)):
                break                                # no need to finish a lost epoch
        test_correct, test_loss_sum, test_total = _evaluate(net, test_iter, loss)
        loss_value, correct_value, worst_value, first_value, test_value, test_loss_value = (
            torch.stack([loss_sum, correct, worst, first_loss, test_correct.to(device),
                         test_loss_sum.to(device)]).tolist())
        seconds = time.perf_counter() - start      # after .tolist(): the GPU has finished too
        if _exploded(worst_value, first_value):
            history.diverged = True
            history.message = (f"diverged at epoch {epoch} (batch loss {worst_value:.3g}); "
                               "try a smaller learning rate")
            print(history.message)
            break
        history.train_loss.append(loss_value / seen)
        history.train_acc.append(correct_value / seen)
        history.test_acc.append(test_value / test_total)
        history.test_loss.append(test_loss_value / test_total)
        history.seconds.append(seconds)
        if plot:
            plot.update(history)
    if not history.diverged and history.test_acc and history.test_acc[-1] < 1.5 / num_classes:
        history.stalled = True
        history.message = (f"not learning: test accuracy {history.test_acc[-1]:.2f} is at "
                           f"chance (1/{num_classes}); try a smaller learning rate if it is "
                           "large, a larger one if it is tiny, or check the initialization")
        print(history.message)
    if plot and (history.diverged or history.stalled or not history.test_acc):
        plot.update(history)
    return history


def _exploded(worst, first):
    """True when a batch loss was inf/nan, or above 10x the first batch's loss."""
    return not math.isfinite(worst) or worst > 10 * first


def _device_of(data_iter):
    """The device the iterator's tensors live on, else `default_device()`."""
    return getattr(data_iter, "device", None) or default_device()
