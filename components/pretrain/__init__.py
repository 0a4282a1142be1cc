"""Pretraining from scratch on Ray Train (the DeepSeek LLM recipe at any scale).

- `stage.STAGE`: the pretrain StageSpec (inputs: pack, tokenizer; config: PipelineConfig).
- `trainer.pretrain(model, cfg, pack_dir, tokenizer_dir, out_dir, ckpt_dir)`: check, train, publish.
- `worker.train_loop`: what each Ray Train worker runs; `loop.Run`: one worker's training state.
- `loss.linear_cross_entropy`: the output head and loss without materialising full logits.
- `schedule`, `optim`, `data`, `checkpoint`, `checks`, `metrics`, `progress`, `report`: the parts.
"""
