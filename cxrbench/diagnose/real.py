"""The diagnostics that real boxes allow (no counterfactuals): per-stream pointing game and mass inside the
boxes, and probe decodability of the box side and zone.

Every (image, class) pair with boxes of that class is one evaluated pair. Its *site* is read from the box
region's centroid on the evaluated image: the side from the column (image left = patient right), the zone from
the row in image thirds (upper / mid / lower). This is coarse: real images are not registered, and the lungs do
not fill the frame (documented in ``docs/diagnostics.md``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from cxrbench.diagnose.probes import linear_probe, split_groups
from cxrbench.diagnose.streams import StreamSource
from cxrbench.diagnose.synthetic import BATCH, _mean_entry, _na, map_stats
from cxrbench.synth.counterfactual import SIDES, ZONES, site_query

#: Files that identify a real dataset folder, and the grounding task whose classes and boxes it uses.
MARKERS = {"nih-cxr14": ("BBox_List_2017.csv", "nih-ground"), "rsna-pneumonia": ("stage_2_train_labels.csv",
                                                                                  "rsna-ground")}
NEEDS_COUNTERFACTUALS = "needs counterfactual renders (the same image with the finding moved or removed); real data has none"


def detect_dataset(root: Path) -> str:
    """``nih-cxr14`` or ``rsna-pneumonia`` from the files in ``root`` (ValueError naming the folder otherwise)."""
    for name, (marker, _task) in MARKERS.items():
        if (Path(root) / marker).is_file():
            return name
    raise ValueError(f"--data-root {root}: neither an NIH ChestX-ray14 folder (BBox_List_2017.csv) nor an RSNA "
                     "Pneumonia folder (stage_2_train_labels.csv); diagnose needs boxes")


def _site(mask: np.ndarray) -> tuple[str, str]:
    rows, cols = np.nonzero(mask)
    h, w = mask.shape
    side = SIDES[0] if cols.mean() < w / 2 else SIDES[1]
    zone = ZONES[min(2, int(3 * rows.mean() / h))]
    return side, zone


def diagnose_real(adapter, settings: frozenset[str], root: Path, dataset: str, work: Path, n_boot: int = 1000,
                  seed: int = 0, progress: bool = False) -> dict[str, Any]:
    from cxrbench.tasks.common import prepare, region_masks
    from cxrbench.tasks.specs import get_task

    spec = get_task(MARKERS[dataset][1])
    data = prepare(spec, root, adapter.image_size, work, seed=seed, progress=progress)
    size = data.cache.size
    pairs: list[dict[str, Any]] = []
    for c, cls in enumerate(spec.classes):
        rows = data.table[data.table[cls.label] == 1.0].reset_index(drop=True)
        if rows.empty:
            continue
        masks = region_masks(data, rows, cls.label, size)
        for k in np.flatnonzero(masks.reshape(len(masks), -1).any(1)):
            side, zone = _site(masks[k])
            pairs.append({"path": rows.loc[k, "path"], "patient": str(rows.loc[k, "patient_id"]), "class": c,
                          "mask": masks[k], "side": side, "zone": zone})
    if len(pairs) < 5:
        raise ValueError(f"--data-root {root}: only {len(pairs)} image(s) with boxes of {', '.join(spec.labels)}; "
                         "diagnose needs at least 5")
    pairs.sort(key=lambda p: (p["path"], p["class"]))
    source = StreamSource(adapter, settings)
    stats: dict[str, dict[str, Any]] = {}
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        rows = data.table.set_index("path").loc[[p["path"] for p in chunk]].reset_index()
        x = data.images(rows)
        outputs = source(x, list(spec.classes))
        for sname, info in outputs.items():
            st = stats.setdefault(sname, {"role": info.get("role", "both"), "hit": [], "mass": [], "site_hit": [],
                                          "site_mass": [], "features": [],
                                          "features_description": info.get("features_description"),
                                          "maps_description": info.get("maps_description")})
            for j, p in enumerate(chunk):
                if "class_maps" in info:
                    mass, hit = map_stats(info["class_maps"][j][p["class"]][None], p["mask"][None])
                    st["mass"].append(mass[0])
                    st["hit"].append(hit[0])
                if "anatomy_maps" in info:
                    q = list(info["anatomy_names"]).index(site_query(p["side"], p["zone"]))
                    mass, hit = map_stats(info["anatomy_maps"][j][q][None], p["mask"][None])
                    st["site_mass"].append(mass[0])
                    st["site_hit"].append(hit[0])
                if info.get("features") is not None:
                    st["features"].append(info["features"][j].float().numpy())
    groups = np.array([p["patient"] for p in pairs])
    summary: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    na: dict[str, str] = {}

    def put(key: str, entry: dict[str, Any]) -> None:
        summary[key] = {k: entry.get(k) for k in ("value", "ci_low", "ci_high")}
        if entry.get("not_applicable"):
            summary[key]["not_applicable"] = na[key] = entry["not_applicable"]
        metrics[key] = entry

    def grouped_mean(values: list[float]) -> dict[str, Any]:
        from cxrbench.metrics.bootstrap import bootstrap_weighted_mean

        return bootstrap_weighted_mean(np.asarray(values, float), groups, n_boot, seed).to_dict()

    for key in ("invariance_ratio", "invariance_ratio_mirror", "invariance_ratio_zone", "presence_effect",
                "class_swap_ratio", "anatomy_score_follow", "anatomy_map_follow"):
        put(key, _na(NEEDS_COUNTERFACTUALS))
    put("anatomy_pointing_game", _na("needs anatomical region masks; real data has only finding boxes"))
    put("anatomy_mass_inside", _na("needs anatomical region masks; real data has only finding boxes"))
    # one probe image per (image): its first pair's site; patients split 60/20/20
    first: dict[str, int] = {}
    for i, p in enumerate(pairs):
        first.setdefault(p["path"], i)
    keep = np.array(sorted(first.values()))
    split = split_groups(groups[keep], seed)
    for sname, st in sorted(stats.items()):
        if st["hit"]:
            put(f"pointing_game.{sname}", grouped_mean(st["hit"]))
            put(f"mass_inside.{sname}", grouped_mean(st["mass"]))
        else:
            for key in ("pointing_game", "mass_inside"):
                put(f"{key}.{sname}", _na(f"the {sname} stream gives no class maps"))
        put(f"map_follow.{sname}", _na(NEEDS_COUNTERFACTUALS))
        if st["site_hit"]:
            put("site_pointing_game", grouped_mean(st["site_hit"]))
            put("site_mass_inside", grouped_mean(st["site_mass"]))
        put(f"probe_class.{sname}", _na("class probes need the counterfactual set (same site, other class)"))
        if st["features"]:
            feats = np.stack(st["features"])[keep]
            side = np.array([SIDES.index(pairs[i]["side"]) for i in keep])
            zone = np.array([ZONES.index(pairs[i]["zone"]) for i in keep])
            put(f"probe_side.{sname}", linear_probe(feats, side, groups[keep], split, 2, n_boot, seed))
            put(f"probe_zone.{sname}", linear_probe(feats, zone, groups[keep], split, 3, n_boot, seed))
        else:
            for target in ("side", "zone"):
                put(f"probe_{target}.{sname}", _na(f"the {sname} stream exposes no frozen features"))
    if not any(s["site_hit"] for s in stats.values()):
        for key in ("site_pointing_game", "site_mass_inside"):
            put(key, _na("the model has no anatomy queries (no anatomy stream)"))
    metrics["streams"] = {s: {k: st[k] for k in ("role", "features_description", "maps_description")}
                          for s, st in stats.items()}
    metrics["site_rule"] = "box-region centroid: side by column (image left = patient right), zone by row thirds"
    metrics["chance"] = {"mass_inside_uniform_map": float(np.mean([p["mask"].mean() for p in pairs])),
                         "probe_side": 0.5, "probe_zone": 1.0 / 3}
    # fingerprints: the evaluated pairs, and the probe split by patient
    lines = "".join(f"{p['path']}\t{spec.classes[p['class']].label}\t{p['side']}\t{p['zone']}\n" for p in pairs)
    splits = {"cases": _write(work / "pairs.tsv", lines, len(pairs))}
    for name, members in split.items():
        n_img = int(np.isin(groups[keep], members).sum())
        splits[name] = _write(work / f"probe-{name}.txt", "".join(f"{m}\n" for m in members), n_img)
    data_entry = {"root": str(data.root), "synthetic": False, "splits": splits, "dataset_splits": data.splits,
                  "skipped_files": data.skipped}
    return {"summary": summary, "metrics": metrics, "not_applicable": na, "data": data_entry,
            "classes": list(spec.classes)}


def _write(path: Path, text: str, n_images: int) -> dict[str, Any]:
    from medslip.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "n_images": int(n_images)}


__all__ = ["MARKERS", "detect_dataset", "diagnose_real"]
