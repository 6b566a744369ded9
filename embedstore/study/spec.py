"""A study file (TOML): many datasets × feature sets × protocols, read and checked whole.

```toml
[study]
name = "ssl-vs-supervised"
seeds = 5                      # a count (0..n-1) or a list of seeds
out = "results.jsonl"          # relative to the study file [<name>.jsonl]
on_missing = "error"           # or "skip": a backbone absent from a dataset is recorded, not fatal
[options]                      # probe options for every protocol (ProbeOptions fields)
n_bootstrap = 0
[[datasets]]                   # any number; stores may differ (folder, archive, s3://, https://)
store = "chest.zarr"
dataset = "chest"
[features]
backbones = ["resnet50.dino", "resnet50.tv_in1k"]   # as -b takes them
fusions = [["resnet50.dino", "resnet50.swav"]]       # as --fuse takes them
[[protocols]]                  # a sweep: fractions or shots (or both)
methods = ["knn", "logreg"]
fractions = [0.01, 0.1, 1.0]
selection = "train-cv"         # or "val"
[[protocols]]                  # a preset (embedstore protocols): it fixes methods and settings
preset = "nielsen"
[[protocols]]                  # neither: a probe on the dataset's own splits, all labels
methods = ["fewshot", "logreg"]
```

Every mistake is one :class:`~embedstore.errors.InvalidDataError` naming the file and the key,
raised before any computation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from embedstore.errors import EmbedstoreError, InvalidDataError

__all__ = ["StudySpec", "DatasetSpec", "ProtocolSpec", "read_study"]

_KEYS = {
    "study": {"name", "seeds", "out", "on_missing"},
    "dataset": {"store", "dataset"},
    "features": {"backbones", "fusions"},
    "protocol": {"methods", "fractions", "shots", "selection", "preset", "options"},
    "top": {"study", "options", "datasets", "features", "protocols"},
}


@dataclass(frozen=True)
class DatasetSpec:
    store: str  # as the study names it, resolved against the study file's folder when local
    dataset: str


@dataclass(frozen=True)
class ProtocolSpec:
    methods: tuple[str, ...] | None
    fractions: tuple[float, ...] | None
    shots: tuple[int, ...] | None
    selection: str | None
    preset: str | None
    options: dict[str, Any]


@dataclass(frozen=True)
class StudySpec:
    path: Path
    name: str
    seeds: tuple[int, ...]
    out: Path
    on_missing: str
    options: dict[str, Any]
    datasets: tuple[DatasetSpec, ...]
    feature_sets: tuple[tuple[str, ...], ...]
    protocols: tuple[ProtocolSpec, ...]


class _Where:
    """Prefixes every error with the study file and the key it concerns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> InvalidDataError:
        return InvalidDataError(f"{self.path}: {key}: {message}")

    def keys(self, table: Any, allowed: set[str], key: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.error(key, f"expected a table, got {type(table).__name__}")
        unknown = sorted(set(table) - allowed)
        if unknown:
            import difflib

            hint = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else ""
            raise self.error(
                f"{key}.{unknown[0]}" if key else unknown[0],
                f"unknown key (expected one of {', '.join(sorted(allowed))}){guess}",
            )
        return table


def _strings(where: _Where, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise where.error(key, f"expected a list of names, got {value!r}")
    return tuple(v.strip() for v in value)


def read_study(path: str | os.PathLike[str]) -> StudySpec:
    """Parse and check a study file's structure and values (stores are opened by the planner)."""
    p = Path(path)
    if not p.is_file():
        raise InvalidDataError(
            f"study file {p} not found; write one (see `embedstore study --help` or "
            "docs/studies.md) and pass its path"
        )
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidDataError(f"{p}: not a valid TOML file ({exc})") from None
    w = _Where(p)
    w.keys(doc, _KEYS["top"], "")
    study = w.keys(doc.get("study", {}), _KEYS["study"], "[study]")
    name = study.get("name", p.stem)
    if not isinstance(name, str) or not name.strip():
        raise w.error("[study].name", f"expected a non-empty name, got {name!r}")
    from embedstore.engine.plan import seed_list

    try:
        seeds = seed_list(study.get("seeds", 5))
    except EmbedstoreError as exc:
        raise w.error("[study].seeds", str(exc)) from None
    out = study.get("out", f"{name}.jsonl")
    if not isinstance(out, str) or not out.strip():
        raise w.error("[study].out", f"expected a file name, got {out!r}")
    out_path = Path(out) if Path(out).is_absolute() else p.parent / out
    on_missing = study.get("on_missing", "error")
    if on_missing not in ("error", "skip"):
        raise w.error("[study].on_missing", f"expected 'error' or 'skip', got {on_missing!r}")
    options = _options(w, doc.get("options", {}), "[options]")
    datasets = doc.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise w.error("[[datasets]]", "give at least one dataset (store = ..., dataset = ...)")
    ds_specs = []
    for i, d in enumerate(datasets, 1):
        key = f"[[datasets]] #{i}"
        w.keys(d, _KEYS["dataset"], key)
        for field in ("store", "dataset"):
            if not isinstance(d.get(field), str) or not d[field].strip():
                raise w.error(f"{key}.{field}", f"expected a {field} name, got {d.get(field)!r}")
        store = d["store"]
        if "://" not in store and not Path(store).is_absolute():
            store = str(p.parent / store)
        ds_specs.append(DatasetSpec(store=store, dataset=d["dataset"]))
    names = [d.dataset for d in ds_specs]
    for i, d in enumerate(ds_specs, 1):
        if names.index(d.dataset) != i - 1:
            first = names.index(d.dataset) + 1
            raise w.error(
                f"[[datasets]] #{i}",
                f"dataset '{d.dataset}' is already #{first} ({ds_specs[first - 1].store}); a "
                "study's tables and ranks name datasets by name: list each dataset once",
            )
    features = w.keys(doc.get("features", {}), _KEYS["features"], "[features]")
    backbones = _strings(w, features.get("backbones", []), "[features].backbones")
    sets: list[tuple[str, ...]] = [(b,) for b in backbones]
    fusions = features.get("fusions", [])
    if not isinstance(fusions, list):
        raise w.error("[features].fusions", f"expected a list of lists of names, got {fusions!r}")
    for j, f in enumerate(fusions, 1):
        fs = _strings(w, f, f"[features].fusions #{j}")
        if len(fs) < 2:
            raise w.error(
                f"[features].fusions #{j}", f"a fusion names two or more backbones: {f!r}"
            )
        sets.append(fs)
    if not sets:
        raise w.error("[features]", "give backbones = [...] or fusions = [[...]]")
    protocols = doc.get("protocols")
    if not isinstance(protocols, list) or not protocols:
        raise w.error("[[protocols]]", "give at least one protocol (methods = [...] or preset)")
    return StudySpec(
        path=p,
        name=name.strip(),
        seeds=seeds,
        out=out_path,
        on_missing=on_missing,
        options=options,
        datasets=tuple(ds_specs),
        feature_sets=tuple(sets),
        protocols=tuple(_protocol(w, pr, i) for i, pr in enumerate(protocols, 1)),
    )


def _options(w: _Where, table: Any, key: str) -> dict[str, Any]:
    from dataclasses import fields

    from embedstore.probes.options import ProbeOptions

    names = {f.name for f in fields(ProbeOptions)} - {"preset", "seed"}
    table = w.keys(table, names, key)
    try:
        ProbeOptions(**table)
    except EmbedstoreError as exc:
        raise w.error(key, str(exc).split(" (on the command line")[0]) from None
    return dict(table)


def _protocol(w: _Where, pr: Any, i: int) -> ProtocolSpec:
    key = f"[[protocols]] #{i}"
    w.keys(pr, _KEYS["protocol"], key)
    methods = _strings(w, pr["methods"], f"{key}.methods") if "methods" in pr else None
    preset = pr.get("preset")
    if preset is not None:
        from embedstore.probes.presets import get_protocol

        try:
            get_protocol(preset)
        except EmbedstoreError as exc:
            raise w.error(f"{key}.preset", str(exc)) from None
    if methods is None and preset is None:
        raise w.error(key, "give methods = [...] or preset = '...'")
    from embedstore.data.subsets import check_fractions, check_shots

    fractions = shots = None
    try:
        if "fractions" in pr:
            fractions = tuple(check_fractions(_list(pr["fractions"])))
        if "shots" in pr:
            shots = tuple(check_shots(_list(pr["shots"])))
    except EmbedstoreError as exc:
        which = "fractions" if "fraction" in str(exc) else "shots"
        raise w.error(f"{key}.{which}", str(exc)) from None
    selection = pr.get("selection")
    if selection is not None:
        from embedstore.probes.selection import check_selection

        try:
            check_selection(selection)
        except EmbedstoreError as exc:
            raise w.error(f"{key}.selection", str(exc)) from None
    options = _options(w, pr.get("options", {}), f"{key}.options")
    return ProtocolSpec(methods, fractions, shots, selection, preset, options)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def with_out(spec: StudySpec, out: str | os.PathLike[str]) -> StudySpec:
    return replace(spec, out=Path(out))
