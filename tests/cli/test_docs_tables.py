"""The generated documentation pages (backbones table, presets table, command reference) are
what the code gives now: `python -m tools.docs_tables` rewrites them (issue 23, item 5)."""

from __future__ import annotations

from tools.docs_tables import (
    PAGES,
    backbones_table,
    cli_reference,
    presets_table,
    stale_pages,
)


def test_generated_pages_are_current():
    assert stale_pages() == [], "run `python -m tools.docs_tables` and commit docs/"


def test_the_pages_hold_what_the_code_says():
    from embedstore.backbones.zoo import BUILTIN_NAMES
    from embedstore.probes.presets import PROTOCOLS

    table = backbones_table()
    assert len(BUILTIN_NAMES) > 20 and all(f"`{name}`" in table for name in BUILTIN_NAMES)
    assert "| 0 |" not in table and "None→None" not in table
    presets = presets_table()
    assert all(f"`{name}`" in presets for name in PROTOCOLS)
    reference = cli_reference()
    assert (
        "## `embedstore extract`" in reference and "## `embedstore analyze saliency`" in reference
    )
    assert "| `--seed` |  | `0` |" in reference  # a default, read from the command
    assert set(PAGES) == {"backbones-table.md", "presets-table.md", "cli-reference.md"}
