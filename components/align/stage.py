"""The alignment StageSpecs: `SFT` (input `model`: a pretrain artifact) and `DPO` (input `model`: an sft artifact).

Both take the `align` section of the config (`AlignConfig`) and write hf/, data/, quarantine/ and report/;
they are defined beside their trainers in `sft.py` and `dpo.py`.
"""

from components.align.dpo import STAGE as DPO
from components.align.sft import STAGE as SFT

__all__ = ["DPO", "SFT"]
