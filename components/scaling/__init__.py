"""The scaling-law study (DeepSeek LLM §3) on the project's own pretraining.

- `stage.STAGE`: the scaling StageSpec (inputs: pack, tokenizer; config: PipelineConfig, section `scaling`).
- `study.run_study(...)`: grid → eta/B laws → IsoFLOP → M/D laws → recommendation → validation → report.
- `plan`: budgets, the grid, the shape ladder and IsoFLOP sets, trial configs; `trials`: Ray Tune runner
  with persisted results; `fit`: power laws, near-optimal band, IsoFLOP vertices, bootstrap intervals;
  `recommend`: laws → model/pretrain overrides; `report`: markdown + PNGs; `tracking`: MLflow child runs.
"""
