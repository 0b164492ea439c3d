"""The leaderboard's ``diagnose`` table: one row per model, from the diagnose records.

Records: ``<results>/<model>/diagnose/<source>_seed-<seed>.json`` (``cxrbench diagnose``). One section per data
source (``synthcxr`` counterfactuals first, then real datasets). Columns are by *role*: "what" is the stream
meant to carry the finding (MeDSLIP's pathology stream; the only stream of a single-stream model), "where" the
stream meant to carry anatomy (MeDSLIP's anatomy stream; ``n/a`` for models without one). Cells follow the other
tables: one seed ``0.812 [0.790, 0.833] (n=1)``, several seeds ``0.812 ± 0.012 (n=3)``, ``n/a`` for a metric the
model cannot have (the reasons are listed under the table), ``—`` for a record without the metric.
Deterministic: sorted, fixed precision, no dates, links relative to the output folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from cxrbench.metrics.bootstrap import mean_std_over_seeds

NAME = "diagnose"
#: (column key, header, metric key, stream role or None for model-level metrics)
COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    ("invariance", "what: invariance ratio (lower = better)", "invariance_ratio", None),
    ("presence", "what: presence effect", "presence_effect", None),
    ("swap", "what: class-swap ratio", "class_swap_ratio", None),
    ("pg_what", "what: pointing game", "pointing_game", "what"),
    ("mass_what", "what: mass inside", "mass_inside", "what"),
    ("follow_what", "what: map follows", "map_follow", "what"),
    ("score_follow", "where: anatomy score follows", "anatomy_score_follow", None),
    ("pg_where", "where: site-query pointing game", "site_pointing_game", None),
    ("anat_pg", "where: anatomy pointing game", "anatomy_pointing_game", None),
    ("anat_mass", "where: anatomy mass inside", "anatomy_mass_inside", None),
    ("p_what_class", "probe what→class", "probe_class", "what"),
    ("p_what_side", "probe what→side", "probe_side", "what"),
    ("p_what_zone", "probe what→zone", "probe_zone", "what"),
    ("p_where_class", "probe where→class", "probe_class", "where"),
    ("p_where_side", "probe where→side", "probe_side", "where"),
    ("p_where_zone", "probe where→zone", "probe_zone", "where"),
)
NA = "n/a"
NO_VALUE = "—"


def load_diagnose_records(results: str | Path, link_base: str | Path) -> list[dict[str, Any]]:
    """Every diagnose record under ``results``, validated, sorted by path: ``{"path", "link", "record"}``."""
    import jsonschema

    from cxrbench.diagnose import validate_diagnose_record

    base = Path(link_base).resolve()
    out = []
    for path in sorted(Path(results).glob("*/diagnose/*_seed-*.json"), key=lambda p: p.as_posix()):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            validate_diagnose_record(record)
        except (json.JSONDecodeError, jsonschema.ValidationError, ValueError) as err:
            raise ValueError(f"{path}: not a valid diagnose record: {str(err).splitlines()[0]}") from err
        out.append({"path": path, "link": Path(os.path.relpath(path.resolve(), base)).as_posix(), "record": record})
    return out


def _stream_of(record: dict[str, Any], role: str) -> str | None:
    streams = record["metrics"].get("streams", {})
    wanted = ("what", "both") if role == "what" else ("where",)
    names = sorted(s for s, meta in streams.items() if meta.get("role") in wanted)
    return names[0] if names else None


def _entry(record: dict[str, Any], metric: str, role: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """(summary entry, not-applicable reason) of one column in one record."""
    key = metric
    if role is not None:
        stream = _stream_of(record, role)
        if stream is None:
            return None, f"no {role} stream (single-stream model)" if role == "where" else "no stream with class output"
        key = f"{metric}.{stream}"
    entry = record["summary"].get(key)
    if entry is None:
        return None, None
    return entry, entry.get("not_applicable")


def _cell(group: list[dict[str, Any]], metric: str, role: str | None) -> dict[str, Any]:
    entries = [_entry(g["record"], metric, role) for g in group]
    reasons = sorted({r for _, r in entries if r})
    if reasons and all(r for _, r in entries):
        return {"text": NA, "mean": None, "std": None, "ci_low": None, "ci_high": None, "n_seeds": 0,
                "not_applicable": reasons[0]}
    values = [None if e is None else e.get("value") for e, _ in entries]
    stats = mean_std_over_seeds(values, ddof=1)
    cell = {"mean": stats["mean"], "std": stats["std"], "ci_low": None, "ci_high": None, "n_seeds": stats["n_seeds"],
            "not_applicable": None}
    if stats["mean"] is None:
        cell["text"] = NO_VALUE
        return cell
    if stats["n_seeds"] == 1:
        e = next(e for e, _ in entries if e is not None and e.get("value") is not None)
        cell.update(ci_low=e.get("ci_low"), ci_high=e.get("ci_high"), std=None)
        ci = "" if e.get("ci_low") is None else f" [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
        cell["text"] = f"{stats['mean']:.3f}{ci} (n=1)"
    else:
        cell["text"] = f"{stats['mean']:.3f} ± {stats['std']:.3f} (n={stats['n_seeds']})"
    return cell


def build(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sections (one per source dataset): rows (models, sorted), cells per column, records, n/a reasons."""
    by_source: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in records:
        dataset = r["record"]["task"]["dataset"]
        by_source.setdefault(dataset, {}).setdefault(r["record"]["model"]["name"], []).append(r)
    order = sorted(by_source, key=lambda d: (d != "synthcxr-counterfactual", d))
    sections = []
    for dataset in order:
        rows = []
        for model in sorted(by_source[dataset]):
            group = sorted(by_source[dataset][model], key=lambda g: (g["record"]["seed"], g["link"]))
            shas = {g["record"]["model"].get("checkpoint_sha256") for g in group} - {None}
            if len(shas) > 1:
                raise ValueError(f"diagnose records of {model} on {dataset} come from {len(shas)} checkpoints: "
                                 + ", ".join(g["link"] for g in group))
            cells = {key: _cell(group, metric, role) for key, _h, metric, role in COLUMNS}
            rows.append({"model": model, "cells": cells, "records": [g["link"] for g in group],
                         "seeds": [g["record"]["seed"] for g in group],
                         "checkpoint_sha256": sorted(shas)[0] if shas else None,
                         "synthetic": bool(group[0]["record"]["data"]["synthetic"])})
        sections.append({"dataset": dataset, "rows": rows})
    return sections


def render_markdown(sections: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    from cxrbench.leaderboard import MARKER

    lines = [MARKER, "", "# diagnose: does each stream carry what it claims?", "",
             "Generated from the `cxrbench diagnose` records; every number is explained in `docs/diagnostics.md`. "
             "\"what\" = the stream meant to carry the finding (MeDSLIP: pathology; a single-stream model: its only "
             "stream), \"where\" = the stream meant to carry anatomy (MeDSLIP: anatomy). Chance: follow 0.5, "
             "probe class 0.25, side 0.5, zone 0.333 (balanced accuracy). One seed: value [95 % bootstrap interval "
             "over base cases] (n=1); `n/a`: the model cannot have the metric (reasons below).", ""]
    for s in sections:
        lines += [f"## {s['dataset']}", ""]
        body = [[r["model"]] + [r["cells"][key]["text"] for key, *_ in COLUMNS] for r in s["rows"]]
        lines += [tabulate(body, headers=["model"] + [h for _k, h, *_ in COLUMNS], tablefmt="github",
                           disable_numparse=True), ""]
        reasons = sorted({(r["model"], h, r["cells"][key]["not_applicable"]) for r in s["rows"]
                          for key, h, *_ in COLUMNS if r["cells"][key]["not_applicable"]})
        if reasons:
            lines += ["Not applicable:", ""]
            merged: dict[tuple[str, str], list[str]] = {}
            for model, header, reason in reasons:
                merged.setdefault((model, reason), []).append(header)
            for (model, reason), headers in sorted(merged.items()):
                lines.append(f"- {model}: {', '.join(headers)}: {reason}")
            lines.append("")
        lines += ["Records:", ""]
        for r in s["rows"]:
            sha = (r["checkpoint_sha256"] or "none")[:12]
            links = ", ".join(f"[{Path(link).name}]({link})" for link in r["records"])
            lines.append(f"- {r['model']}: {links} (checkpoint sha256 {sha}, "
                         f"{'synthetic' if r['synthetic'] else 'real'} data)")
        lines.append("")
    return "\n".join(lines)


def _r(x: Any) -> Any:
    return None if x is None else round(float(x), 6)


def render_csv(sections: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "model", "column", "metric", "role", "mean", "std", "ci_low", "ci_high", "n_seeds",
                     "not_applicable", "records"])
    for s in sections:
        for r in s["rows"]:
            for key, _h, metric, role in COLUMNS:
                c = r["cells"][key]
                writer.writerow([s["dataset"], r["model"], key, metric, role or "",
                                 *("" if c[k] is None else f"{c[k]:.6f}" for k in ("mean", "std", "ci_low", "ci_high")),
                                 c["n_seeds"], c["not_applicable"] or "", ";".join(r["records"])])
    return buf.getvalue()


def render_json(sections: list[dict[str, Any]]) -> str:
    doc = {"table": NAME, "columns": [{"key": k, "header": h, "metric": m, "role": role} for k, h, m, role in COLUMNS],
           "sections": [{"dataset": s["dataset"], "rows": [
               {"model": r["model"], "records": r["records"], "seeds": r["seeds"],
                "checkpoint_sha256": r["checkpoint_sha256"], "synthetic": r["synthetic"],
                "cells": {k: {**c, **{f: _r(c[f]) for f in ("mean", "std", "ci_low", "ci_high")}}
                          for k, c in r["cells"].items()}} for r in s["rows"]]} for s in sections]}
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def add_diagnose_files(files: dict[str, str], results: str | Path, link_base: str | Path) -> dict[str, str]:
    """``files`` plus ``diagnose.md/.csv/.json`` and a line in ``README.md`` when diagnose records exist."""
    records = load_diagnose_records(results, link_base)
    if not records:
        return files
    sections = build(records)
    out = dict(files)
    out[f"{NAME}.md"] = render_markdown(sections)
    out[f"{NAME}.csv"] = render_csv(sections)
    out[f"{NAME}.json"] = render_json(sections)
    models = sorted({r["model"] for s in sections for r in s["rows"]})
    out["README.md"] = out.get("README.md", "") + (
        f"Diagnostics: [{NAME}]({NAME}.md) · [csv]({NAME}.csv) · [json]({NAME}.json) · [png]({NAME}.png): "
        f"{len(records)} diagnose record(s) of {', '.join(models)} (see `docs/diagnostics.md`).\n")
    return out


def write_diagnose_plot(results: str | Path, out: str | Path) -> list[Path]:
    """``diagnose.png`` (bars of the headline numbers per model, first source) when diagnose records exist."""
    records = load_diagnose_records(results, out)
    if not records:
        return []
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    section = build(records)[0]
    keys = ("invariance", "follow_what", "score_follow", "p_what_class", "p_what_side", "p_where_class",
            "p_where_side")
    headers = {k: h for k, h, *_ in COLUMNS}
    path = Path(out) / f"{NAME}.png"
    with matplotlib.rc_context({"svg.hashsalt": "cxrbench-leaderboard", "path.simplify": False}):
        fig = Figure(figsize=(8.0, 4.0), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        width = 0.8 / max(1, len(section["rows"]))
        for i, r in enumerate(section["rows"]):
            xs = [j - 0.4 + width * (i + 0.5) for j in range(len(keys))]
            ys = [r["cells"][k]["mean"] or 0.0 for k in keys]
            ax.bar(xs, ys, width=width, label=r["model"])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([headers[k].replace(": ", ":\n") for k in keys], fontsize=6)
        ax.set_title(f"diagnose ({section['dataset']}); n/a drawn as 0")
        ax.legend(fontsize=7, loc="best")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", metadata={"Software": None})
    return [path]


__all__ = ["COLUMNS", "add_diagnose_files", "build", "load_diagnose_records", "write_diagnose_plot"]
