"""Time the NIH table phase alone at full size, without rendering images (issue 19).

Builds an NIH ChestX-ray14 layout with 112,120 rows (``Data_Entry_2017_v2020.csv``, split lists, a 984-box list)
and 112,120 *empty* PNG files (the table phase only lists them), then times
``get_dataset("nih-cxr14").load(root)`` a few times and prints a digest of the table, so that two versions of the
code can be compared on the same root::

    python -m benchmarks.scale.table_load --root /tmp/nih-table [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from pathlib import Path

N_IMAGES = 112_120
CLASSES = ("Atelectasis Cardiomegaly Effusion Infiltration Mass Nodule Pneumonia Pneumothorax Consolidation Edema "
           "Emphysema Fibrosis Pleural_Thickening Hernia").split()


def build(root: Path, n: int = N_IMAGES, seed: int = 0) -> None:
    """The NIH files the table phase reads, with empty images (written once; kept if present)."""
    if (root / ".complete").is_file():
        return
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names, rows = [], []
    for i in range(n):
        pid = i // 2 + 1
        name = f"{pid:08d}_{i % 2:03d}.png"
        names.append(name)
        label = "No Finding" if rng.random() < 0.5 else "|".join(rng.sample(CLASSES, rng.randint(1, 3)))
        rows.append(f"{name},{label},{i % 2},{pid},{rng.randint(10, 90)},M,PA,2500,2048,0.143,0.143,")
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
    (root / "Data_Entry_2017_v2020.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    test = [m for j, m in enumerate(names) if (j // 2) % 4 == 0]
    in_test = set(test)
    (root / "test_list.txt").write_text("\n".join(test) + "\n")
    (root / "train_val_list.txt").write_text("\n".join(m for m in names if m not in in_test) + "\n")
    boxes = [f"{names[j]},Atelectasis,100,100,200,200" for j in range(0, 1968, 2)]
    (root / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n" + "\n".join(boxes) + "\n")
    for name in names:
        (root / "images" / name).touch()
    (root / ".complete").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="folder for the fake NIH layout (built once)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    build(args.root)

    import pandas as pd

    from cxrbench.data.registry import get_dataset

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        table = get_dataset("nih-cxr14").load(args.root, seed=0, split_file=None)
        times.append(time.perf_counter() - start)
    plain = table.drop(columns=["boxes", "box_labels"]).astype(str)
    digest = hashlib.sha256(pd.util.hash_pandas_object(plain, index=True).to_numpy().tobytes()).hexdigest()[:16]
    print(f"nih-cxr14 table of {len(table)} rows: load {', '.join(f'{t:.2f}' for t in times)} s; "
          f"{int(table['boxes'].map(len).sum())} boxes; digest {digest}")


if __name__ == "__main__":
    main()
