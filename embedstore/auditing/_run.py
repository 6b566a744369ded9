"""The audit's steps in order, one backbone's features in memory at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedstore.auditing.duplicates import collect_pairs, count_by_split_pair, search_backbone
from embedstore.auditing.label_errors import confident_learning, ranked_issues
from embedstore.auditing.leak import leak_effect
from embedstore.auditing.patients import patients_in_several_splits, splits_made_by_embedstore
from embedstore.auditing.result import AuditResult, Progress
from embedstore.auditing.shortcuts import shortcut


def run_audit(
    store: Any,
    dataset: str,
    names: list[str],
    info: Any,
    meta: list[str],
    *,
    k: float,
    search: str,
    top: int,
    device: str,
    seed: int,
    progress: Progress | None,
) -> AuditResult:
    """Run every section (see :func:`embedstore.auditing.audit`)."""
    from embedstore.auditing._probe import choose_C, out_of_fold_proba
    from embedstore.store import read_meta

    ids, labels, split = store.ids(dataset), store.labels(dataset), store.split(dataset)
    group = store.group(dataset)
    attributes = {m: read_meta(store, dataset, m) for m in meta}
    task, K = info.task, len(info.class_names)
    res = AuditResult(
        store=store.location, dataset=dataset, backbones=names, task=task,
        n_samples=info.n_samples, has_groups=group is not None,
        splits_by_embedstore=splits_made_by_embedstore(info.source),
    )  # fmt: skip
    total = 1 + len(names) * (3 + len(meta))
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done, total)

    if group is not None:
        res.patients = patients_in_several_splits(group, split, ids)
        if res.splits_by_embedstore:
            res.notes.append(
                "splits were made by embedstore at extraction, grouped by patient: no patient "
                "can be in two splits"
            )
    else:
        res.notes.append("the dataset has no patient groups: the patient check was skipped")
    step("patients")
    searches, valid = [], {}
    for name in names:
        X = store.embeddings(dataset, name)  # (n, D) float32
        valid[name] = store.valid_rows(dataset, name)
        s = search_backbone(X, split, name, valid=valid[name], k=k, method=search, device=device)
        searches.append(s)
        res.thresholds[name] = {
            "threshold": s.threshold, "median_nn_similarity": s.median_sim, "method": s.method,
            "rule": f"log(1-cos) < median - {k:g} * 1.4826 * MAD over nearest neighbours",
        }  # fmt: skip
        step(f"duplicates {name}")
        del X

    def read_rows(name: str, rows: np.ndarray) -> np.ndarray:
        return store.embeddings(dataset, name, rows=rows)

    res.duplicates = collect_pairs(searches, read_rows, ids, split, group)
    res.duplicate_counts = count_by_split_pair(res.duplicates)
    flagged_test = np.array(
        sorted({p.a for p in res.duplicates if p.split_a == "test" and p.split_b != "test"}),
        dtype=np.int64,
    )
    single = task != "multilabel"
    if not single:
        res.notes.append("multilabel task: the label-error section applies to single labels")
    for name in names:
        X = store.embeddings(dataset, name)
        ok = valid[name]
        train, val = np.flatnonzero((split == 0) & ok), np.flatnonzero((split == 1) & ok)
        C = choose_C(X, labels, train, val, task, device)  # one C for the label, both sections
        res.leak[name] = leak_effect(X, labels, split, flagged_test, task=task, n_classes=K,
                                     valid=ok, C=C, device=device, seed=seed)  # fmt: skip
        step(f"leak {name}")
        if single:
            tv = np.flatnonzero((split < 2) & ok)
            oof, n_folds = out_of_fold_proba(X, labels, tv, group, task=task, C=C, n_classes=K,
                                             device=device, seed=seed)  # fmt: skip
            scored = ~np.isnan(oof).any(axis=1)
            cl = confident_learning(labels[tv][scored], oof[scored])
            res.label_issues[name] = ranked_issues(tv[scored], cl, ids, list(info.class_names), top)
            res.label_summary[name] = {
                "n_scored": int(scored.sum()), "n_issues": int(cl.issues.sum()),
                "folds": n_folds, "C": C, "score": "self-confidence",
                "noise_rate": np.round(cl.noise_rate, 4).tolist(),
                "class_names": list(info.class_names),
            }  # fmt: skip
        step(f"label errors {name}")
        for col in meta:
            r = shortcut(X, attributes[col], labels, split, group, backbone=name, name=col,
                         task=task, n_classes=K, valid=ok, device=device, seed=seed)  # fmt: skip
            if r is None:
                res.notes.append(f"attribute '{col}' has one value only: nothing to read")
            else:
                res.shortcuts.append(r)
            step(f"shortcut {name} {col}")
        del X
    return res
