"""The translation peer's validation scores: `../shared/peers/hf_marian_multi30k.py` scores its
trained model on test_2016_flickr only; this runs the peer's own evaluation (its `--phase
eval`: greedy and beam 4, the final model and the average of its last checkpoints, sacreBLEU
and chrF) on Multi30k's validation split, without changing the peer's file.

    python scripts/peer_val.py runs/peer-hf-bf16 [--data-dir ../shared/data] [-- peer flags]

The peer's results.json (its training summary and test scores) is kept as it was; the
validation scores go to results_val.json beside it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "hf_marian_multi30k.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the peer's --out directory, trained")
    ap.add_argument("--data-dir", type=Path, default=None, help="holds multi30k/")
    ap.add_argument("--peer", type=Path, default=PEER, help="hf_marian_multi30k.py")
    ap.add_argument("flags", nargs="*", help="more peer flags (after --), e.g. --avg-last 3")
    args = ap.parse_args()
    if not (args.out / "results.json").is_file():
        print(f"peer_val: {args.out}/results.json: not found (train first)", file=sys.stderr)
        sys.exit(2)
    if args.data_dir is not None:
        os.environ["MULTI30K_DIR"] = str(args.data_dir / "multi30k")
    spec = importlib.util.spec_from_file_location("hf_marian_multi30k", args.peer)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)  # reads MULTI30K_DIR as it loads
    peer.TEST_SETS = {"val": peer.DATA}  # its test scores are already in results.json
    results = args.out / "results.json"
    kept = args.out / "results_test.json"
    shutil.copyfile(results, kept)
    sys.argv = [str(args.peer), "--phase", "eval", "--skip-speed", "--out", str(args.out)]
    sys.argv += args.flags
    try:
        peer.main()
        shutil.move(results, args.out / "results_val.json")
    finally:
        shutil.move(kept, results)


if __name__ == "__main__":
    main()
