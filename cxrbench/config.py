"""Run configurations: YAML files shipped in the package, overridable with ``--set key=value``."""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-4`` as a number as YAML 1.2 does (YAML 1.1 makes it a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse config text (safe: plain data only); ``1e-4`` and ``3E5`` are floats."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def shipped_configs(method: str) -> list[str]:
    """Names of the configs shipped for ``method`` (e.g. ``paper``, ``demo``)."""
    folder = resources.files("cxrbench") / "configs" / method
    if not folder.is_dir():
        return []
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_config(method: str, name_or_path: str) -> dict[str, Any]:
    """A shipped config by name, or a YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
    else:
        resource = resources.files("cxrbench") / "configs" / method / f"{name_or_path}.yaml"
        if not resource.is_file():
            known = ", ".join(shipped_configs(method)) or "none"
            raise FileNotFoundError(f"no config {name_or_path!r} for {method} (shipped: {known}; or give a YAML path)")
        text = resource.read_text(encoding="utf-8")
    data = load_yaml(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {name_or_path}: expected a mapping at the top level")
    return data


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML: numbers, booleans, lists, null)."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = config
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise KeyError(f"override {key!r}: {part!r} is not a section of the config")
            node = node[part]
        if parts[-1] not in node:
            raise KeyError(f"override {key!r}: unknown key {parts[-1]!r} (known: {', '.join(sorted(node))})")
        node[parts[-1]] = load_yaml(raw)
    return config
