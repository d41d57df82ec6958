"""Seeding, and the training loop that every notebook shares."""

import math
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from helpers.device import checked_device, default_device
from helpers.plotting import LivePlot

EVAL_BATCH_SIZE = 1000   # the test pass needs no gradients, so it can take bigger batches


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


def sgd(params, lr, batch_size):
    """Mini-batch SGD as a function updater: `train(..., lambda b: sgd(params, lr, b))`.

    Every parameter steps by `lr * grad` and its gradient is zeroed. `batch_size` is taken
    (the reference book's `sgd` has the same signature) but not used: `train`
    backpropagates the batch MEAN of the loss, so the gradient is already an average, and
    dividing by the batch size again would shrink every step (notebook 02 shows that bug).
    The book backpropagates the sum and divides here instead: the step is the same.
    """
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad
            p.grad.zero_()


def evaluate_accuracy(net, data_iter):
    """Fraction of examples in `data_iter` that `net` classifies correctly."""
    correct, _, total = _evaluate(net, data_iter)
    return float(correct) / total


def evaluate(net, data_iter, loss):
    """`(mean loss, accuracy)` of `net` on `data_iter`, in evaluation mode (no dropout).

    For example the training set's own loss and accuracy as the network now computes them,
    which `train` does not record (its training numbers are counted during the epoch).
    """
    correct, loss_sum, total = _evaluate(net, data_iter, loss)
    return float(loss_sum) / total, float(correct) / total


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
    epoch, in evaluation mode, in batches of up to `EVAL_BATCH_SIZE`.

    If the loss becomes inf/nan or grows past 10x the first batch's loss, training stops,
    `history.diverged` is set and one line is printed; nothing is raised. Numbers stay on
    the device during an epoch and are read back together at its end: a GPU waits once
    per epoch, not once per batch. Interrupting the kernel (the stop button) raises
    `KeyboardInterrupt` as usual; the epochs finished so far are in `plot`'s history.
    """
    device = checked_device(device) if device is not None else _device_of(train_iter)
    if isinstance(net, nn.Module):
        net.to(device)
    if plot is True:
        plot = LivePlot(num_epochs)
    eval_iter = _bigger_batches(test_iter)
    is_optimizer = hasattr(updater, "step")      # torch.optim, or a scratch class like it
    move = getattr(train_iter, "device", None) != device
    history = History(num_epochs=num_epochs)
    on_cpu = device.type == "cpu"   # on the CPU, reading a number back costs nothing
    first_loss = None
    for epoch in range(1, num_epochs + 1):
        start = time.perf_counter()
        if isinstance(net, nn.Module):
            net.train()
        losses, corrects, sizes = [], [], []
        for X, y in train_iter:
            if move:                               # a DataLoader (as in benchmarks/) gives CPU
                X, y = X.to(device), y.to(device)  # batches; ours are on the device already
            if is_optimizer:
                updater.zero_grad()                # before the forward pass, as in the book
            y_hat = net(X)
            batch_loss = loss(y_hat, y)
            if batch_loss.ndim:                   # reduction="none": one loss per example
                batch_loss = batch_loss.mean()
            batch_loss.backward()
            if is_optimizer:
                updater.step()
            else:
                updater(X.shape[0])               # a function: steps and zeroes the gradients
            losses.append(batch_loss.detach())    # summed at the end of the epoch, on the device
            corrects.append((y_hat.argmax(dim=1) == y).sum())   # argmax: no gradient kept
            sizes.append(len(y))
            if first_loss is None:
                first_loss, num_classes = batch_loss.detach(), y_hat.shape[-1]
                first_float = first_loss.item() if on_cpu else None
            if on_cpu and _exploded(losses[-1].item(), first_float):
                break                                # no need to finish a lost epoch
        test_correct, test_loss_sum, test_total = _evaluate(net, eval_iter, loss)
        losses = torch.stack(losses)
        weights = torch.tensor(sizes, device=device, dtype=losses.dtype)
        loss_value, worst_value, first_value, correct_value, test_value, test_loss_value = (
            torch.stack([(losses * weights).sum(), losses.max(), first_loss,
                         torch.stack(corrects).sum().to(losses.dtype),
                         test_correct.to(device, losses.dtype),
                         test_loss_sum.to(device, losses.dtype)]).tolist())
        seconds = time.perf_counter() - start      # after .tolist(): the GPU has finished too
        if _exploded(worst_value, first_value):
            history.diverged = True
            history.message = (f"diverged at epoch {epoch} (batch loss {worst_value:.3g}); "
                               "try a smaller learning rate")
            print(history.message)
            break
        seen = sum(sizes)
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


def _bigger_batches(test_iter):
    """The test iterator in batches of `EVAL_BATCH_SIZE` when it can change its batch size."""
    resize = getattr(test_iter, "with_batch_size", None)
    if resize is None or test_iter.batch_size >= EVAL_BATCH_SIZE:
        return test_iter
    return resize(EVAL_BATCH_SIZE)


def _exploded(worst, first):
    """True when a batch loss was inf/nan, or above 10x the first batch's loss."""
    return not math.isfinite(worst) or worst > 10 * first


def _device_of(data_iter):
    """The device the iterator's tensors live on, else `default_device()`."""
    return getattr(data_iter, "device", None) or default_device()
