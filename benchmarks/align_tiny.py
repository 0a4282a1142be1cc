"""Alignment on the tiny preset: SFT + DPO wall time per phase, against the previous tiny settings.

Both variants run the stages' `work()` on the same tiny pretrain artifact (built or reused through
the StageSpecs, no Prefect), in one process, interleaved (tiny, previous, tiny, ...):
- `tiny`: the preset as it is (Ray Train local mode, 6 SFT epochs, DPO on `dpo_language`);
- `previous`: the tiny settings before the speed-up (one Ray Train worker actor, 20 SFT epochs, DPO
  on the demo pairs dpo_en + dpo_zh, 2 DPO epochs at 5e-4, a fifth held out).
Ray is started once, before the first round, and its start is not counted (in the pipeline the
pretrain stage has started it); the libraries are imported before timing. Reported: wall seconds
of SFT and DPO per variant (median, min–max) with the stages' own phase timings (`counts.seconds`),
the held-out preference accuracy of the SFT and the DPO model, and the ratios tiny / previous.

Prints one JSON object and a table; `--out DIR` writes DIR/align_tiny.json; `--quick` runs one round.
The machine may be shared: ratios are the headline.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import args, emit, machine, summary  # noqa: E402
from components.presets import preset  # noqa: E402

NAME = "align_tiny"
PREVIOUS = {"num_workers": 1, "sft_epochs": 20, "dpo_datasets": ["dpo_en", "dpo_zh"], "dpo_epochs": 2,
            "dpo_lr": 5e-4, "heldout_fraction": 0.2}


def base_model() -> str:
    """The tiny preset's pretrain artifact (built when missing: a few minutes)."""
    from components.artifacts import ArtifactStore
    from flows.stages import PIPELINE, PIPELINE_STAGES, spec

    cfg, store, uris = preset("tiny"), ArtifactStore(), {}
    for step in PIPELINE[:PIPELINE_STAGES.index("pretrain") + 1]:
        uris[step.stage] = spec(step.stage).run(step.config(cfg), step.input_uris(uris), store).uri
    return str(store.resolve(uris["pretrain"]))


def run_once(variant: str, base: str) -> dict:
    from components.align import dpo, sft

    cfg = preset("tiny").align.model_copy(update=PREVIOUS if variant == "previous" else {})
    out = Path(tempfile.mkdtemp(prefix=f"align-bench-{variant}-"))
    started = time.perf_counter()
    sft_counts = sft.work(cfg, {"model": Path(base)}, out / "sft")
    middle = time.perf_counter()
    dpo_counts = dpo.work(cfg, {"model": out / "sft"}, out / "dpo")
    return {"sft_s": middle - started, "dpo_s": time.perf_counter() - middle, "total_s": time.perf_counter() - started,
            "sft_phases": sft_counts["seconds"], "dpo_phases": dpo_counts["seconds"],
            "accuracy_sft": dpo_counts["reward_accuracy_sft"], "accuracy_dpo": dpo_counts["reward_accuracy_dpo"],
            "heldout_pairs": dpo_counts["heldout_pairs"], "eos_after_dpo": dpo_counts["samples_stopped_at_eos"]}


def warm_up() -> None:
    """Start Ray and import what the stages import, so neither lands in the first timed round."""
    import matplotlib.pyplot  # noqa: F401
    import ray
    import trl  # noqa: F401
    from datasets import Dataset  # noqa: F401
    from ray.train.torch import TorchTrainer  # noqa: F401

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2)


def main() -> None:
    opts = args(__doc__.splitlines()[0])
    rounds = opts.repeats or (1 if opts.quick else 2)
    base = base_model()
    warm_up()
    runs: dict[str, list[dict]] = {"tiny": [], "previous": []}
    for _ in range(rounds):
        for variant in runs:
            runs[variant].append(run_once(variant, base))
    result = {"benchmark": NAME, "machine": machine(), "rounds": rounds, "previous_settings": PREVIOUS,
              "variants": {v: _summarise(r) for v, r in runs.items()}, "runs": runs}
    med = {v: result["variants"][v]["total_s"]["median"] for v in runs}
    result["ratio_total_tiny_over_previous"] = med["tiny"] / med["previous"]
    rows = [[v, f"{s['sft_s']['median']:.1f}", f"{s['dpo_s']['median']:.1f}", f"{s['total_s']['median']:.1f}",
             f"{s['accuracy_sft']:.2f} -> {s['accuracy_dpo']:.2f}"] for v, s in result["variants"].items()]
    emit(NAME, result, rows, ["variant", "sft s", "dpo s", "total s", "held-out accuracy sft -> dpo (median)"],
         opts.out)


def _summarise(runs: list[dict]) -> dict:
    return {"sft_s": summary([r["sft_s"] for r in runs]), "dpo_s": summary([r["dpo_s"] for r in runs]),
            "total_s": summary([r["total_s"] for r in runs]),
            "accuracy_sft": statistics.median(r["accuracy_sft"] for r in runs),
            "accuracy_dpo": statistics.median(r["accuracy_dpo"] for r in runs)}


if __name__ == "__main__":
    main()
