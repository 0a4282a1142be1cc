"""Data preparation as DeepSeek did it: normalise and tag, deduplicate across ALL sources, filter,
decontaminate against every evaluation set, remix per bucket; Ray Data pipelines end to end.

Modules: `units` (word/character units and n-gram hashes), `normalize`, `tagging`, `filters`,
`minhash` + `dedup`, `decontam`, `remix`, `ingest` (robust corpus reading), `pipeline` (the Ray
Data graph), `report`, `stage` (the StageSpec), `shards` (reader of packed token shards).
"""
