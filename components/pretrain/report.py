"""The pretrain report a person looks at: loss and validation curves, the LR schedule, throughput,
and the accounting (parameters, M, 6N₁, 6N₂, C) as JSON, all under `out/report/`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def write_report(records: list[dict], accounting: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounting.json").write_text(json.dumps(accounting, indent=2))
    train = [r for r in records if "loss" in r]
    if not train:
        return
    tokens = [r["tokens"] for r in train]
    _plot(folder / "loss.png", "training loss", "tokens", "loss",
          {"train": (tokens, [r["loss"] for r in train]), **_val_curves(train)})
    _plot(folder / "lr.png", "learning rate", "tokens", "lr", {"lr": (tokens, [r["lr"] for r in train])})
    _plot(folder / "throughput.png", "throughput", "tokens", "tokens/s",
          {"tokens/s": (tokens, [r["tokens_per_s"] for r in train])})


def _val_curves(records: list[dict]) -> dict[str, tuple[list, list]]:
    curves: dict[str, tuple[list, list]] = {}
    for r in records:
        for bucket, value in (r.get("val_loss") or {}).items():
            xs, ys = curves.setdefault(f"val {bucket}", ([], []))
            xs.append(r["tokens"])
            ys.append(value)
    return curves


def _plot(path: Path, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list, list]]) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, marker="o" if label.startswith("val") else None, markersize=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(records: list[dict]) -> dict:
    """Final loss, last validation losses, and throughput/MFU over the steps after the first."""
    train = [r for r in records if "loss" in r]
    if not train:
        return {}
    steady = train[1:] or train
    val = next((r["val_loss"] for r in reversed(train) if r.get("val_loss")), {})
    mfu = [r["mfu"] for r in steady if "mfu" in r and not r.get("peak_probed_busy")]  # only against a trusted peak
    return {"final_loss": train[-1]["loss"], "val_loss": val, "steps": train[-1]["step"],
            "tokens": train[-1]["tokens"], "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            **({"mfu_mean": statistics.fmean(mfu)} if mfu else {})}
