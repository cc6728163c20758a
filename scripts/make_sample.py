"""Regenerate the bundled R2R sample in ``data/`` from a full copy of the R2R data.

Usage: python scripts/make_sample.py --r2r ../shared/data/r2r --out data

The sample is five Matterport3D scans that appear in both R2R train and val_seen, with all of their
episodes from those two splits and their connectivity graphs (Matterport3DSimulator, MIT licence).
"""

import argparse
import json
import shutil
from pathlib import Path

SAMPLE_SCANS = ["759xd9YjKW5", "JF19kD82Mey", "i5noydFURQK", "jh4fc5c5qoQ", "r47D5H71a5s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--r2r", type=Path, required=True, help="folder with R2R_*.json, connectivity/, train_vocab.txt")
    parser.add_argument("--out", type=Path, default=Path("data"))
    args = parser.parse_args()
    (args.out / "connectivity").mkdir(parents=True, exist_ok=True)
    for split in ("train", "val_seen"):
        items = [x for x in json.loads((args.r2r / f"R2R_{split}.json").read_text()) if x["scan"] in SAMPLE_SCANS]
        (args.out / f"R2R_sample_{split}.json").write_text(json.dumps(items, indent=1) + "\n")
        print(f"{split}: {len(items)} paths, {sum(len(x['instructions']) for x in items)} instructions")
    for scan in SAMPLE_SCANS:
        shutil.copy(args.r2r / "connectivity" / f"{scan}_connectivity.json", args.out / "connectivity")
    shutil.copy(args.r2r / "train_vocab.txt", args.out / "train_vocab.txt")
    shutil.copy(args.r2r / "LICENSE.Matterport3DSimulator", args.out / "LICENSE.Matterport3DSimulator")


if __name__ == "__main__":
    main()
