"""cli/tables: renderings for the terminal (the learning curve `inspect` draws in text)."""

from __future__ import annotations

from mlpcli.cli.tables import learning_curve


def test_learning_curve_draws_both_series_and_the_best_epoch() -> None:
    history = [
        {"epoch": e, "train_loss": 1.0 - 0.25 * (e - 1), "val_loss": 0.5, "best_epoch": 3}
        for e in range(1, 6)
    ]
    lines = learning_curve(history, width=60, height=5)
    assert lines == [
        "  1 |*    ",
        "    | *   ",
        "0.5 |oo#oo",
        "    |   * ",
        "  0 |    *",
        "    +-----",
        "     1   5",
        "       ^ best epoch 3",
        "     * training loss   o validation loss",
    ]


def test_learning_curve_averages_epochs_into_the_width() -> None:
    history = [{"epoch": e, "train_loss": float(e), "val_loss": None} for e in range(1, 101)]
    lines = learning_curve(history, width=10, height=4)
    plot = [line.split("|", 1)[1] for line in lines[:4]]
    assert all(len(row) == 10 for row in plot)
    assert plot[-1][0] == "*" and plot[0][-1] == "*" and "o" not in "".join(plot)
    assert learning_curve([]) == []
