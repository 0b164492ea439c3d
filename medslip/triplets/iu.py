"""Indiana University chest X-ray reports (Open-i, ``NLMCXR_reports.tgz``) as MIMIC-style text.

The ``torchxrayvision`` package ships the 3,955 IU report XML files; this module reads them straight
from the tarball (without importing ``torchxrayvision``) for tests, the benchmark and the docs.
"""

from __future__ import annotations

import html
import importlib.util
import re
import tarfile
from pathlib import Path

_ABSTRACT_RE = re.compile(r'<AbstractText Label="([A-Z ]+)">(.*?)</AbstractText>', re.DOTALL)
_SECTION_ORDER = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")


def default_iu_path() -> Path | None:
    """``NLMCXR_reports.tgz`` inside the installed ``torchxrayvision`` package, or None."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = Path(root) / "data" / "NLMCXR_reports.tgz"
        if p.is_file():
            return p
    return None


def iu_xml_to_text(xml: str) -> str:
    """One IU report XML -> text in the MIMIC layout (``" FINDINGS: ..."`` lines; empty sections left out)."""
    found = {label: html.unescape(body).strip() for label, body in _ABSTRACT_RE.findall(xml)}
    lines = ["                                 FINAL REPORT"]
    for label in _SECTION_ORDER:
        if found.get(label):
            lines.append(f" {label}: {found[label]}")
            lines.append(" ")
    return "\n".join(lines)


def iu_reports(path: str | Path | None = None) -> list[tuple[str, str]]:
    """All IU reports as ``(file name, MIMIC-style text)``, in tarball order."""
    p = Path(path) if path is not None else default_iu_path()
    if p is None:
        raise FileNotFoundError("NLMCXR_reports.tgz not found: install torchxrayvision or pass its path")
    out: list[tuple[str, str]] = []
    with tarfile.open(p, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                f = tar.extractfile(member)
                if f is not None:
                    out.append((Path(member.name).name, iu_xml_to_text(f.read().decode("utf-8", "replace"))))
    return out
