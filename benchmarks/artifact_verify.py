"""What checking an artifact before reuse costs: the quick check (sizes, and checksums only of files whose size or
mtime moved since the last verification) and the full check (every sha256), against reading nothing (baseline:
the manifest's existence, as reuse worked before). Artifacts of many shards, as the pack stage writes them.

    python benchmarks/artifact_verify.py [--quick] [--out DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import args, emit, interleaved, machine, summary  # noqa: E402
from components.artifacts import ArtifactStore  # noqa: E402
from components.home import Home  # noqa: E402


def build(store: ArtifactStore, total_mb: int, shards: int) -> tuple[str, str]:
    def work(out: Path) -> dict:
        block = bytes(range(256)) * 4096  # 1 MB
        for i in range(shards):
            with (out / f"shard_{i:04d}.bin").open("wb") as fh:
                for _ in range(total_mb // shards):
                    fh.write(block)
        return {"shards": shards}

    result = store.build("bench", 1, {"mb": total_mb, "shards": shards}, {}, work)
    return result.stage, result.key


def main() -> None:
    opts = args(__doc__.split("\n", 1)[0])
    sizes = [(16, 4)] if opts.quick else [(64, 16), (512, 64)]
    repeats = opts.repeats or (3 if opts.quick else 5)
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(Home.resolve(tmp))
        for total_mb, shards in sizes:
            stage, key = build(store, total_mb, shards)
            assert store.problems(stage, key, full=True) == []
            times = interleaved({"exists": lambda s=stage, k=key: store.is_done(s, k),
                                 "quick": lambda s=stage, k=key: store.problems(s, k),
                                 "full": lambda s=stage, k=key: store.problems(s, k, full=True)}, repeats)
            med = {name: summary(samples) for name, samples in times.items()}
            mb_s = total_mb / med["full"]["median"]
            results.append({"artifact_mb": total_mb, "files": shards, **med, "full_mb_per_s": mb_s,
                            "quick_over_full": med["quick"]["median"] / med["full"]["median"]})
            rows.append([f"{total_mb} MB / {shards} files", f"{med['exists']['median'] * 1e3:.2f} ms",
                         f"{med['quick']['median'] * 1e3:.2f} ms", f"{med['full']['median'] * 1e3:.0f} ms",
                         f"{mb_s:.0f} MB/s"])
    emit("artifact_verify", {"benchmark": "artifact_verify", "machine": machine(), "repeats": repeats,
                             "results": results}, rows,
         ["artifact", "exists (before)", "quick check (reuse)", "full check (verify)", "sha256 rate"], opts.out)


if __name__ == "__main__":
    main()
