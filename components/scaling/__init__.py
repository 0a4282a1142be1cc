"""The scaling-law study (DeepSeek LLM §3) on the project's own pretraining.

- `stage.STAGE`: the scaling StageSpec (inputs: pack, tokenizer; config: PipelineConfig, section `scaling`).
- `study.run_study(...)`: grid (bracketed by extension rounds) → eta/B laws → IsoFLOP → M/D laws →
  recommendation → validation → verdict → report.
- `bracket`: is each grid budget's optimum interior, and which points extend it; `checks`: extrapolation
  flags, M's share of the real FLOPs, the 10x verdict.
- `plan`: budgets, the grid, the shape ladder and IsoFLOP sets, trial configs; `trials`: Ray Tune runner
  with persisted results; `fit`: power laws, near-optimal band, IsoFLOP vertices, bootstrap intervals;
  `recommend`: laws → model/pretrain overrides; `report`: markdown + PNGs; `tracking`: MLflow child runs.
"""
