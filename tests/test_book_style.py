"""Code written in the reference book's style runs on `helpers` with only the names changed.

TEACHING.md has the table (`d2l.load_data_fashion_mnist` -> `helpers.load_fashion_mnist`,
`d2l.train_ch3` -> `helpers.train`, `d2l.sgd` -> `helpers.sgd`, ...). Here we check that
claim on the two shapes of code the book's readers bring: softmax regression written from
scratch with a function updater, and an `nn.Module` with its own `is_training` switch for
dropout trained with `torch.optim`. The code is written for this test, in the book's style.
"""

import torch
from torch import nn

import helpers


def test_scratch_softmax_regression_with_a_function_updater():
    helpers.set_seed(0)
    batch_size, lr, num_epochs = 256, 0.1, 3
    train_iter, test_iter = helpers.load_fashion_mnist(batch_size, num_train=5000)
    W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)
    b = torch.zeros(10, requires_grad=True)

    def softmax(logits):
        exp = torch.exp(logits)
        return exp / exp.sum(1, keepdim=True)

    def net(X):                                           # returns probabilities, as the book's
        return softmax(X.reshape(-1, 784) @ W + b)

    def cross_entropy(y_hat, y):                          # one loss per example
        return -torch.log(y_hat[range(len(y_hat)), y])

    def updater(batch_size):
        return helpers.sgd([W, b], lr, batch_size)

    history = helpers.train(net, train_iter, test_iter, cross_entropy, num_epochs, updater,
                            plot=False)
    assert len(history.test_acc) == num_epochs and history.test_acc[-1] > 0.7
    assert helpers.evaluate_accuracy(net, test_iter) == history.test_acc[-1]


def test_helpers_sgd_takes_the_books_step():
    """The book backpropagates the batch's summed loss and divides by the batch size in
    `sgd`; `train` backpropagates the mean and `helpers.sgd` does not divide again. The
    step is the same."""
    train_iter, test_iter = helpers.load_fashion_mnist(64, num_train=64)
    X, y = train_iter.X, train_iter.y                      # one batch: all 64 images
    torch.manual_seed(2)
    W0 = torch.randn(784, 10) * 0.01
    ours = W0.clone().requires_grad_()
    book = W0.clone().requires_grad_()
    loss = nn.CrossEntropyLoss(reduction="none")
    helpers.train(lambda X: X.reshape(-1, 784) @ ours, [(X, y)], test_iter, loss, 1,
                  lambda batch_size: helpers.sgd([ours], 0.5, batch_size), plot=False)
    loss(X.reshape(-1, 784) @ book, y).sum().backward()
    with torch.no_grad():
        book -= 0.5 * book.grad / len(y)
    torch.testing.assert_close(ours.detach(), book.detach())


class DropoutNet(nn.Module):
    """Two hidden layers and dropout switched by the module's own training flag."""

    def __init__(self, is_training=True, p1=0.2, p2=0.5):
        super().__init__()
        self.training = is_training
        self.p1, self.p2 = p1, p2
        self.lin1, self.lin2 = nn.Linear(784, 256), nn.Linear(256, 256)
        self.lin3 = nn.Linear(256, 10)
        self.relu = nn.ReLU()
        self.dropout_calls = 0

    def dropout(self, H, p):
        mask = (torch.rand(H.shape) > p).float()
        return mask * H / (1.0 - p)

    def forward(self, X):
        H1 = self.relu(self.lin1(X.reshape(-1, 784)))
        if self.training:
            self.dropout_calls += 1
            H1 = self.dropout(H1, self.p1)
        H2 = self.relu(self.lin2(H1))
        if self.training:
            H2 = self.dropout(H2, self.p2)
        return self.lin3(H2)


def test_a_dropout_net_with_its_own_training_switch():
    helpers.set_seed(0)
    train_iter, test_iter = helpers.load_fashion_mnist(256, num_train=5000)
    net = DropoutNet()
    trainer = torch.optim.SGD(net.parameters(), lr=0.5)
    history = helpers.train(net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
                            3, trainer, plot=False)
    assert net.dropout_calls == 3 * len(train_iter)       # on while training, off for testing
    assert not net.training and history.test_acc[-1] > 0.6   # it learns (chance: 0.1)
