"""Shared helpers for the notebooks: data, training, plotting and the training playground."""

from helpers.data import TEXT_LABELS, BrokenDataError, load_fashion_mnist, text_labels
from helpers.device import default_device
from helpers.diagnostics import (
    LayerStats,
    format_health,
    network_health,
    plot_distributions,
    plot_health,
    plot_update_ratios,
    recording_updater,
    update_data_ratios,
)
from helpers.plotting import (
    LivePlot,
    compare_histories,
    compare_runs,
    figure_to_png,
    plot_function,
    plot_history,
    show_images,
)
from helpers.training import History, evaluate, evaluate_accuracy, set_seed, sgd, train
from helpers.widgets import figure_controls, training_controls

__all__ = [
    "TEXT_LABELS", "BrokenDataError", "History", "LivePlot", "compare_histories", "compare_runs",
    "default_device", "evaluate", "evaluate_accuracy", "figure_controls", "figure_to_png",
    "load_fashion_mnist", "plot_function", "plot_history", "set_seed", "show_images",
    "sgd", "text_labels", "train", "training_controls",
    # network health (helpers/diagnostics.py)
    "LayerStats", "format_health", "network_health", "plot_distributions", "plot_health",
    "plot_update_ratios", "recording_updater", "update_data_ratios",
]
