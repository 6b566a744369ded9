"""Single labels as sources give them (CSV cells, tar ``.cls`` / ``.json`` values, label arrays)
-> class indices 0..k-1 and class names.

Integer labels are class identifiers, not indices to fill up to: the k distinct values become
classes 0..k-1 in ascending numeric order, named by their values ("0", "1", "10000000"). Labels
that already are 0..k-1 map to themselves, so such data gives the same classes as always. When
the mapping is not the identity it is returned as a one-line note, which the source records in
the dataset's ``source`` attribute (shown by ``embedstore info STORE -d D``).

A label that is a number but not a whole one (``nan``, ``inf``, ``1.5``), an empty label, or a mix
of whole numbers and text in one column is refused with one error naming the rows, unless
``class_names`` names every label (they are then read as class names).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from embedstore.errors import SourceError

__all__ = ["integer_classes", "order_classes", "parse_int", "read_labels"]

_INT64_MAX = 2**63 - 1
_SHOWN = 5


def parse_int(value: str) -> int | float | None:
    """``"3"``, ``"3.0"``, ``" 03 "`` -> 3; another number (``"1.5"``, ``"nan"``, ``"inf"``,
    beyond int64) -> that float (``math.inf`` when too large); text -> None."""
    text = value.strip()
    try:
        out = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            return None
        if not math.isfinite(f) or f != int(f):
            return f
        out = int(f)
    return out if -_INT64_MAX <= out <= _INT64_MAX else math.inf


def order_classes(
    found: Iterable[str], given: Sequence[str] | None, task: str | None, where: str
) -> list[str]:
    """The class order for labels that are names: ``given`` (which must name exactly the classes
    found), else the found names sorted. An ordinal task needs its grades' order, so sorted
    names are accepted for it only when they are integers already in numeric order."""
    found = sorted(set(found))
    if given is None:
        if task == "ordinal" and not _numeric_order(found):
            raise SourceError(
                f"{where}: task 'ordinal' needs the order of the grades, and the class names "
                f"{found} have none that can be trusted; give it with --class-names "
                f"(class_names=), lowest grade first, e.g. --class-names {','.join(found)}"
            )
        return found
    missing = sorted(set(found) - set(given))
    unknown = sorted(set(given) - set(found))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"labels {missing[:10]} found in the data are not among them")
        if unknown:
            parts.append(f"{unknown[:10]} have no images")
        raise SourceError(
            f"{where}: --class-names {','.join(given)} must name exactly the classes found "
            f"({', '.join(found)}); {' and '.join(parts)}"
        )
    return list(given)


def _numeric_order(names: Sequence[str]) -> bool:
    try:
        values = [int(n) for n in names]
    except ValueError:
        return False
    return values == sorted(values)


def integer_classes(
    values: np.ndarray, class_names: Sequence[str] | None, where: str
) -> tuple[np.ndarray, list[str], str]:
    """Integer label values (n,) -> (class indices (n,), class names, mapping note).

    The distinct values, ascending, are classes 0..k-1. ``class_names`` gives one name per
    distinct value (lowest first), or, for labels >= 0, one name per index 0..max (the names of
    indices no image has are dropped, and the note says so). The note is "" for the identity
    (labels already 0..k-1, named by value or by one name each)."""
    distinct, labels = np.unique(np.asarray(values, dtype=np.int64), return_inverse=True)
    labels = labels.reshape(-1).astype(np.int64)
    k = len(distinct)
    identity = k == 0 or (int(distinct[0]) == 0 and int(distinct[-1]) == k - 1)
    by_value = [str(int(v)) for v in distinct]
    if class_names is None:
        if identity:
            return labels, by_value, ""
        return (
            labels,
            by_value,
            (f"the {k} distinct integer labels, ascending, are classes 0..{k - 1}, named by value"),
        )
    names = list(class_names)
    if len(names) == k:
        if identity:
            return labels, names, ""
        pairs = ", ".join(f"{v} -> {n}" for v, n in zip(by_value, names, strict=True))
        return labels, names, f"integer label -> class name: {pairs}"
    top = int(distinct[-1]) if k else -1
    if k and int(distinct[0]) >= 0 and len(names) == top + 1:
        kept = [names[int(v)] for v in distinct]
        dropped = [f"{i} ({names[i]})" for i in range(top + 1) if i not in set(distinct.tolist())]
        pairs = ", ".join(f"{v} -> {n}" for v, n in zip(by_value, kept, strict=True))
        return (
            labels,
            kept,
            (
                f"integer label -> class name: {pairs}; names given for label(s) no image has were "
                f"dropped: {', '.join(dropped)}"
            ),
        )
    shown = ", ".join(by_value[:10]) + (f" and {k - 10} more" if k > 10 else "")
    per_index = f", or one per index 0..{top}" if not identity and int(distinct[0]) >= 0 else ""
    raise SourceError(
        f"{where}: the labels hold {k} distinct integer value(s) ({shown}) but {len(names)} "
        f"class names were given ({', '.join(names)}); give one name per distinct value, "
        f"lowest value first{per_index}"
    )


def read_labels(
    values: Sequence[str],
    *,
    class_names: Sequence[str] | None,
    task: str | None,
    where: str,
    what: str,
    rows: Callable[[Sequence[int]], str],
) -> tuple[np.ndarray, list[str], str]:
    """Single labels as written (stripped text, one per row) -> (class indices (n,), class
    names, mapping note); see the module docstring for the rules.

    Args:
        where: the source, starting every message ("CSV manifest 'm.csv'").
        what: where the labels sit within it ("in column 'label'").
        rows: row indices -> how a user finds them ("lines 4, 9", "samples ['a/1.png']").
    """
    at = f" {what}" if what else ""
    blank = [i for i, v in enumerate(values) if v == ""]
    if blank:
        raise SourceError(
            f"{where}: empty label{at} on {rows(blank)}; give every image a label, or "
            "remove its row"
        )
    parsed = [parse_int(v) for v in values]
    whole = [i for i, p in enumerate(parsed) if type(p) is int]
    if len(whole) == len(values):
        return integer_classes(np.asarray(parsed, dtype=np.int64), class_names, where)
    if class_names is not None:  # the user names every label: read them all as names
        names = order_classes(values, class_names, task, where)
        index = {name: i for i, name in enumerate(names)}
        return np.asarray([index[v] for v in values], dtype=np.int64), names, ""
    bad = [i for i, p in enumerate(parsed) if isinstance(p, float)]
    if bad:
        nan = any(isinstance(p, float) and math.isnan(p) for p in parsed)
        raise SourceError(
            f"{where}: {_values(values, bad)}{at} on {rows(bad)} "
            f"{'is not a class' if _one(values, bad) else 'are not classes'}: expected "
            f"a whole-number class id (e.g. 0, 1, 2) or a class name, got "
            f"{_kind(parsed, bad)}; {'fill in the class' if nan else 'fix the label'}, or "
            f"remove the row{'s' if len(bad) > 1 else ''}"
        )
    if whole:  # whole numbers and text in one column
        text = [i for i, p in enumerate(parsed) if p is None]
        odd, usual, kind = (
            (text, whole, "integer class ids")
            if len(whole) >= len(text)
            else (whole, text, "class names")
        )
        raise SourceError(
            f"{where}: {_values(values, odd)}{at} on {rows(odd)} "
            f"{'does' if _one(values, odd) else 'do'} not match the other "
            f"labels, which are {kind} (e.g. {_values(values, usual, False)}); fix the value(s), or pass "
            "--class-names (class_names=) naming every label to read them all as class names"
        )
    names = order_classes(values, None, task, where)
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[v] for v in values], dtype=np.int64), names, ""


def _one(values: Sequence[str], picked: Sequence[int]) -> bool:
    return len({values[i] for i in picked}) == 1


def _values(values: Sequence[str], picked: Sequence[int], prefix: bool = True) -> str:
    """ "label 'x'" / "labels 'x', 'y' and 3 more": the distinct values at ``picked``."""
    distinct = list(dict.fromkeys(values[i] for i in picked))
    more = f" and {len(distinct) - _SHOWN} more" if len(distinct) > _SHOWN else ""
    head = ("label " if len(distinct) == 1 else "labels ") if prefix else ""
    return head + ", ".join(f"'{v}'" for v in distinct[:_SHOWN]) + more


def _kind(parsed: Sequence[object], picked: Sequence[int]) -> str:
    kinds = []
    for i in picked:
        p = parsed[i]
        if isinstance(p, float) and math.isnan(p):
            kinds.append("a missing value (NaN)")
        elif isinstance(p, float) and math.isinf(p):
            kinds.append("an infinite number or one beyond 64-bit integers")
        else:
            kinds.append("a number that is not whole")
    return " and ".join(dict.fromkeys(kinds))
