"""The diagnostics on a SynthCXR counterfactual set (every number is defined in ``docs/diagnostics.md``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrbench.diagnose.probes import linear_probe, split_groups
from cxrbench.diagnose.streams import StreamSource
from cxrbench.metrics.bootstrap import bootstrap_weighted_mean, interval_from_samples, resample_weights
from cxrbench.metrics.grounding import minmax_normalise, pointing_game_hits, upsample_patch_maps
from cxrbench.models.base import ClassSpec
from cxrbench.synth.counterfactual import REGION_QUERY, REGIONS, SIDES, VARIANTS, ZONES, CounterfactualSet, site_query
from medslip.augment import eval_transform

BATCH = 16
#: Variant indices (order of :data:`VARIANTS`) and the moves compared for "follow" metrics: (with, without).
B, M, Z, A, S = (VARIANTS.index(v) for v in ("base", "mirror", "zone", "absent", "swap"))
PAIRS = ((B, M), (M, B), (B, Z), (Z, B))
SITE_OF = {B: 0, M: 1, Z: 2}  # which of the case's three site masks a variant's finding occupies


def map_stats(maps: torch.Tensor, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mass inside and pointing-game hit of ``maps`` (K x h x w, patch grid) against ``masks`` (K x H x W).

    Maps are upsampled bilinearly to the mask size and min-max normalised (the grounding protocol); mass =
    sum of the normalised map inside the mask / its total (a constant map gets the mask's area fraction,
    what a uniform map would give); a hit = the map maximum lies in the mask (constant maps miss).
    """
    k, h, w = maps.shape
    up = upsample_patch_maps(maps.reshape(k, 1, h * w).float().numpy(), masks.shape[-2:], (h, w))[:, 0]
    norm = minmax_normalise(up)
    total = norm.sum(axis=(1, 2))
    inside = (norm * masks).sum(axis=(1, 2))
    area = masks.mean(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(total > 0, inside / np.where(total > 0, total, 1.0), area)
    return mass, pointing_game_hits(up, masks).astype(np.float64)


def ratio_interval(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """mean(num) / mean(den) over cases with a percentile bootstrap over cases (JSON-ready entry)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    point = num.mean() / den.mean() if den.mean() > 0 else float("nan")
    samples = []
    for w in resample_weights(len(num), None, n_boot, seed):
        d = w @ den
        with np.errstate(invalid="ignore", divide="ignore"):
            samples.append(np.where(d > 0, (w @ num) / np.where(d > 0, d, 1.0), np.nan))
    reason = None if np.isfinite(point) else "the finding never changes the class score (no signal)"
    entry = interval_from_samples(point, np.concatenate(samples), point_reason=reason).to_dict()
    entry.update({"numerator_mean": float(num.mean()), "denominator_mean": float(den.mean())})
    return entry


def _mean_entry(values: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    values = np.asarray(values, float)
    ok = np.isfinite(values)
    return bootstrap_weighted_mean(np.where(ok, values, 0.0), None, n_boot, seed, include=ok).to_dict()


def _na(reason: str) -> dict[str, Any]:
    return {"value": None, "ci_low": None, "ci_high": None, "not_applicable": reason}


def _images(cset: CounterfactualSet) -> list[tuple[int, int]]:
    """(case, variant) of every render, case by case."""
    return [(i, v) for i in range(len(cset.cases)) for v in range(len(VARIANTS))]


def diagnose_synthetic(adapter, settings: frozenset[str], cset: CounterfactualSet, classes: list[ClassSpec],
                       n_boot: int = 1000, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """All synthetic diagnostics of one adapter; returns ``{"summary", "metrics", "not_applicable", "probe_split"}``.

    ``classes`` are the ClassSpecs of the set's focal classes, in ``cset.params["classes"]`` order.
    """
    names = list(cset.params["classes"])
    n_cases, n_var = len(cset.cases), len(VARIANTS)
    flat = _images(cset)
    source = StreamSource(adapter, settings)
    has_zs = "zs" in settings
    scores = np.full((n_cases, n_var, len(names)), np.nan)
    per_stream: dict[str, dict[str, Any]] = {}
    region_mass = np.full((n_cases, len(REGIONS)), np.nan)
    region_hit = np.full((n_cases, len(REGIONS)), np.nan)

    def stream_store(name: str, info: dict[str, Any]) -> dict[str, Any]:
        if name not in per_stream:
            per_stream[name] = {
                "role": info.get("role", "both"), "features_description": info.get("features_description"),
                "maps_description": info.get("maps_description"), "features": {},
                "cls_mass": np.full((n_cases, n_var, 3), np.nan), "cls_hit": np.full((n_cases, n_var, 3), np.nan),
                "swap_mass": np.full(n_cases, np.nan), "swap_hit": np.full(n_cases, np.nan),
                "site_mass": np.full((n_cases, n_var, 3), np.nan), "site_hit": np.full((n_cases, n_var, 3), np.nan),
                "site_score": np.full((n_cases, n_var, 3), np.nan),
                "has_class_maps": "class_maps" in info, "has_anatomy": "anatomy_maps" in info}
        return per_stream[name]

    iterator = range(0, len(flat), BATCH)
    if progress:
        from rich.progress import track

        iterator = track(list(iterator), description="diagnose (counterfactuals)", transient=True)
    for start in iterator:
        chunk = flat[start:start + BATCH]
        x = torch.stack([eval_transform(cset.cases[i].renders[VARIANTS[v]].image, adapter.image_size)
                         for i, v in chunk])
        if has_zs:
            probs = adapter.zero_shot(x, classes).float().numpy()
            for j, (i, v) in enumerate(chunk):
                scores[i, v] = probs[j]
        outputs = source(x, classes)
        for sname, info in outputs.items():
            st = stream_store(sname, info)
            if info.get("features") is not None:
                feats = info["features"].float().numpy()
                for j, (i, v) in enumerate(chunk):
                    st["features"][(i, v)] = feats[j]
            for j, (i, v) in enumerate(chunk):
                case = cset.cases[i]
                site_masks = np.stack([case.renders[VARIANTS[k]].mask for k in (B, M, Z)])
                c_base = names.index(case.finding)
                if "class_maps" in info:
                    cm = info["class_maps"][j]
                    mass, hit = map_stats(cm[c_base][None].expand(3, -1, -1), site_masks)
                    st["cls_mass"][i, v], st["cls_hit"][i, v] = mass, hit
                    if v == S:
                        own = case.renders["swap"].mask[None]
                        mass, hit = map_stats(cm[names.index(case.swap_class)][None], own)
                        st["swap_mass"][i], st["swap_hit"][i] = mass[0], hit[0]
                if "anatomy_maps" in info:
                    anames = list(info["anatomy_names"])
                    other = SIDES[1 - SIDES.index(case.side)]
                    queries = [site_query(case.side, case.zone), site_query(other, case.zone),
                               site_query(case.side, case.moved_zone)]
                    qi = [anames.index(q) for q in queries]
                    am = info["anatomy_maps"][j]
                    mass, hit = map_stats(am[qi], site_masks)
                    st["site_mass"][i, v], st["site_hit"][i, v] = mass, hit
                    st["site_score"][i, v] = info["anatomy_scores"][j][qi].float().numpy()
                    if v == A:
                        ri = [anames.index(REGION_QUERY[r]) for r in REGIONS]
                        masks = np.stack([case.regions[r] for r in REGIONS])
                        mass, hit = map_stats(am[ri], masks)
                        region_mass[i], region_hit[i] = mass, hit

    summary: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    na: dict[str, str] = {}

    def put(key: str, entry: dict[str, Any]) -> None:
        summary[key] = {k: entry.get(k) for k in ("value", "ci_low", "ci_high")}
        if entry.get("not_applicable"):
            summary[key]["not_applicable"] = entry["not_applicable"]
            na[key] = entry["not_applicable"]
        metrics[key] = entry

    # ------------------------------------------------------------------ "what": location invariance
    invariance_keys = ("invariance_ratio", "invariance_ratio_mirror", "invariance_ratio_zone", "presence_effect",
                       "class_swap_ratio")
    if has_zs:
        idx = np.arange(n_cases)
        c_of = np.array([names.index(c.finding) for c in cset.cases])
        own = scores[idx, :, c_of]  # n_cases x n_var: the base class's score on every variant
        d_mirror = np.abs(own[:, B] - own[:, M])
        d_zone = np.abs(own[:, B] - own[:, Z])
        d_presence = np.abs(own[:, B] - own[:, A])
        d_swap = np.abs(own[:, B] - own[:, S])
        put("invariance_ratio", ratio_interval((d_mirror + d_zone) / 2, d_presence, n_boot, seed))
        put("invariance_ratio_mirror", ratio_interval(d_mirror, d_presence, n_boot, seed))
        put("invariance_ratio_zone", ratio_interval(d_zone, d_presence, n_boot, seed))
        put("presence_effect", _mean_entry(own[:, B] - own[:, A], n_boot, seed))
        put("class_swap_ratio", ratio_interval(d_swap, d_presence, n_boot, seed))
        metrics["score_changes"] = {"mean_abs_change_mirror": float(d_mirror.mean()),
                                    "mean_abs_change_zone": float(d_zone.mean()),
                                    "mean_abs_change_presence": float(d_presence.mean()),
                                    "mean_abs_change_swap": float(d_swap.mean()),
                                    "per_class_presence_effect": {
                                        c: float(np.mean(own[c_of == k, B] - own[c_of == k, A]))
                                        for k, c in enumerate(names) if np.any(c_of == k)}}
    else:
        for key in invariance_keys:
            put(key, _na("the model gives no zero-shot class scores (no 'zs' setting)"))

    # ------------------------------------------------------------------ maps per stream, probes
    split = split_groups(np.arange(n_cases), seed)
    streams_meta = {}
    if not per_stream:
        per_stream["image"] = stream_store("image", {"role": "both"})
    for sname, st in sorted(per_stream.items()):
        streams_meta[sname] = {k: st[k] for k in ("role", "features_description", "maps_description")}
        if st["has_class_maps"]:
            own_hits = np.concatenate([np.stack([st["cls_hit"][:, v, SITE_OF[v]] for v in (B, M, Z)], 1),
                                       st["swap_hit"][:, None]], 1)
            own_mass = np.concatenate([np.stack([st["cls_mass"][:, v, SITE_OF[v]] for v in (B, M, Z)], 1),
                                       st["swap_mass"][:, None]], 1)
            put(f"pointing_game.{sname}", _mean_entry(own_hits.mean(1), n_boot, seed))
            put(f"mass_inside.{sname}", _mean_entry(own_mass.mean(1), n_boot, seed))
            put(f"map_follow.{sname}", _mean_entry(_follow(st["cls_mass"]), n_boot, seed))
        else:
            reason = f"the {sname} stream gives no class maps" + (
                "" if "ground" in settings else " (the model does not ground)")
            for key in ("pointing_game", "mass_inside", "map_follow"):
                put(f"{key}.{sname}", _na(reason))
        if st["has_anatomy"]:
            put("site_pointing_game", _mean_entry(
                np.stack([st["site_hit"][:, v, SITE_OF[v]] for v in (B, M, Z)], 1).mean(1), n_boot, seed))
            put("site_mass_inside", _mean_entry(
                np.stack([st["site_mass"][:, v, SITE_OF[v]] for v in (B, M, Z)], 1).mean(1), n_boot, seed))
            put("anatomy_score_follow", _mean_entry(_follow(st["site_score"]), n_boot, seed))
            put("anatomy_map_follow", _mean_entry(_follow(st["site_mass"]), n_boot, seed))
        if st["features"]:
            keys = [(i, v) for i in range(n_cases) for v in (B, M, Z, S)]
            feats = np.stack([st["features"][k] for k in keys])
            groups = np.array([i for i, _ in keys])
            cases = cset.cases
            cls = np.array([names.index(cases[i].renders[VARIANTS[v]].finding) for i, v in keys])
            side = np.array([SIDES.index(cases[i].renders[VARIANTS[v]].side) for i, v in keys])
            zone = np.array([ZONES.index(cases[i].renders[VARIANTS[v]].zone) for i, v in keys])
            for target, labels, k in (("class", cls, len(names)), ("side", side, 2), ("zone", zone, 3)):
                entry = linear_probe(feats, labels, groups, split, k, n_boot, seed)
                put(f"probe_{target}.{sname}", entry)
        else:
            reason = f"the {sname} stream exposes no frozen features" + (
                "" if source.native else " (the adapter has no streams() method and exports no encoder)")
            for target in ("class", "side", "zone"):
                put(f"probe_{target}.{sname}", _na(reason))

    # ------------------------------------------------------------------ anatomy grounding, anatomy follow
    anatomy_streams = [s for s, st in per_stream.items() if st["has_anatomy"]]
    if anatomy_streams:
        put("anatomy_pointing_game", _mean_entry(region_hit.mean(1), n_boot, seed))
        put("anatomy_mass_inside", _mean_entry(region_mass.mean(1), n_boot, seed))
        area = np.stack([np.stack([c.regions[r] for r in REGIONS]).mean(axis=(1, 2)) for c in cset.cases])
        metrics["anatomy_per_region"] = {
            r: {"query": REGION_QUERY[r], "pointing_game": float(region_hit[:, k].mean()),
                "mass_inside": float(region_mass[:, k].mean()), "area_fraction": float(area[:, k].mean())}
            for k, r in enumerate(REGIONS)}
        metrics["anatomy_chance"] = {"mass_inside_uniform_map": float(area.mean())}
    else:
        reason = "the model has no anatomy queries (no anatomy stream)"
        for key in ("anatomy_pointing_game", "anatomy_mass_inside", "anatomy_score_follow", "anatomy_map_follow",
                    "site_pointing_game", "site_mass_inside"):
            put(key, _na(reason))
    finding_area = np.mean([[c.renders[VARIANTS[v]].mask.mean() for v in (B, M, Z, S)] for c in cset.cases])
    metrics["chance"] = {"mass_inside_uniform_map": float(finding_area),
                         "follow": 0.5, "probe_class": 1.0 / len(names), "probe_side": 0.5, "probe_zone": 1.0 / 3}
    metrics["streams"] = streams_meta
    return {"summary": summary, "metrics": metrics, "not_applicable": na, "probe_split": split}


def _follow(values: np.ndarray) -> np.ndarray:
    """Per case: the share of :data:`PAIRS` (finding at site X vs moved away) where ``values`` at site X is higher
    with the finding there (ties count one half). ``values`` is n_cases x n_variants x 3 sites."""
    out = np.zeros(values.shape[0])
    for with_, without in PAIRS:
        site = SITE_OF[with_]
        a, b = values[:, with_, site], values[:, without, site]
        out += np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
    return out / len(PAIRS)


__all__ = ["diagnose_synthetic", "map_stats", "ratio_interval"]
