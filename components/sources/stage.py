"""The `corpus` StageSpec (defined in `components.sources.corpus`): configured sources in, normalised records out.

inputs {} → out/ docs/<source>.parquet, quarantine.jsonl, report/sources.md; config: `SourcesConfig`.
"""

from components.sources.corpus import STAGE

__all__ = ["STAGE"]
