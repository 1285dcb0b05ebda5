"""Loss and learning rate to CSV while training, and a PNG plot of them afterwards."""

import csv
from pathlib import Path

from transformers import TrainerCallback

REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


class LossLogger(TrainerCallback):
    """Appends step, loss, learning rate (and any DPO reward metrics) to a CSV file."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        row = {"step": state.global_step, "loss": logs["loss"],
               "learning_rate": logs.get("learning_rate")}
        row |= {key: logs[key] for key in REWARDS if key in logs}
        new = not self.path.exists()
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


def plot_history(csv_path: Path, png_path: Path) -> None:
    """Loss (left axis) and learning rate (right axis) over steps."""
    if not csv_path.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    steps = [int(r["step"]) for r in rows]
    fig, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(steps, [float(r["loss"]) for r in rows], color="tab:blue")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss", color="tab:blue")
    rates = [float(r["learning_rate"]) for r in rows if r["learning_rate"]]
    if len(rates) == len(steps):
        lr_axis = loss_axis.twinx()
        lr_axis.plot(steps, rates, color="tab:orange")
        lr_axis.set_ylabel("learning rate", color="tab:orange")
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
