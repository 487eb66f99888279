"""curves.png: a run's loss and learning rate against the optimizer step, drawn from log.jsonl.

`RunLogger.close()` (`lavis/common/logger.py`) calls `plot_curves` at the end of every
training run; by hand: `python -m lavis.common.plots output/.../<job_id>/log.jsonl [out.png]`
(default: curves.png beside the log).  Training records carry `step` (the optimizer step their
micro-batch went into); the loss drawn at a step is the mean of its micro-batches' losses, the
same value TensorBoard's `train/loss` shows.  Logs written before `step` existed count each
training record as one step.  matplotlib draws off-screen (Agg backend).
"""

import json
import os
import sys

from lavis.common.errors import UserError, report

FIGSIZE, DPI = (10, 4), 100  # a 1000 x 400 pixel image


class PlotError(UserError):
    """The log cannot be drawn (unreadable, no training records, or no matplotlib)."""


def read_curves(log_path):
    """([step], [mean loss], [lr]) of the training records in `log_path`, by ascending step."""
    by_step = {}
    try:
        with open(log_path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise PlotError(f"{log_path} line {number} is not JSON") from None
                if "loss" in record and "lr" in record:
                    step = record.get("step", len(by_step) + 1)
                    losses, _ = by_step.get(step, ([], None))
                    by_step[step] = (losses + [record["loss"]], record["lr"])
    except OSError as error:
        raise PlotError(f"cannot read {log_path}: {error.strerror}") from None
    if not by_step:
        raise PlotError(f"{log_path} has no training records (loss and lr)")
    steps = sorted(by_step)
    return steps, [sum(by_step[s][0]) / len(by_step[s][0]) for s in steps], [by_step[s][1] for s in steps]


def plot_curves(log_path, png_path):
    """Draw loss and lr against the optimizer step from `log_path` into `png_path`."""
    steps, losses, lrs = read_curves(log_path)
    try:
        import matplotlib
    except ImportError:
        raise PlotError("matplotlib is not installed (pip install matplotlib)") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, (loss_axes, lr_axes) = pyplot.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    try:
        loss_axes.plot(steps, losses, color="tab:blue")
        loss_axes.set(title="training loss", xlabel="optimizer step", ylabel="loss")
        lr_axes.plot(steps, lrs, color="tab:orange")
        lr_axes.set(title="learning rate", xlabel="optimizer step", ylabel="lr")
        lr_axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        for axes in (loss_axes, lr_axes):
            axes.grid(alpha=0.3)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        figure.tight_layout()
        figure.savefig(png_path, dpi=DPI)
    except OSError as error:
        raise PlotError(f"cannot write {png_path}: {error.strerror}") from None
    finally:
        pyplot.close(figure)
    return png_path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m lavis.common.plots LOG.jsonl [OUT.png]", file=sys.stderr)
        return 2
    png_path = argv[1] if len(argv) == 2 else os.path.join(os.path.dirname(argv[0]), "curves.png")
    try:
        plot_curves(argv[0], png_path)
    except PlotError as error:
        return report(error)
    print(png_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
