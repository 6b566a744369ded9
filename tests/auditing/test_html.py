"""The audit page (`embedstore audit --html`, `AuditResult.write_html`) rendered by a real browser
(headless Debian chromium) from stores extracted from real images: every thumbnail decodes, each
duplicate pair and suspected label error shows its ids, the cap says how many were left out, and
a store whose images are gone has no thumbnails and says so once, on the page and the terminal."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from embedstore import audit
from embedstore.auditing.html import THUMB_PX
from embedstore.cli.main import app

from ..results.conftest import run_chromium

pytestmark = pytest.mark.slow

# Test-only: the page has no script; this one, appended to a copy, writes what the browser decoded
# into the DOM that --dump-dom prints.
_PROBE = """<script>window.addEventListener("load", () => {
  const w = [...document.images].map(i => i.complete ? i.naturalWidth : -1);
  document.body.setAttribute("data-widths", w.join(","));
});</script></body>"""


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"] or "")
        if tag == "body":
            self.body = dict(attrs)


def _decoded_widths(chromium, page: Path, tmp_path: Path) -> tuple[list[int], _Images]:
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE))
    dump = run_chromium(chromium, probe, tmp_path, "--dump-dom").stdout
    dom = _Images()
    dom.feed(dump)
    widths = dom.body.get("data-widths") or ""
    return [int(w) for w in widths.split(",") if w], dom


def test_audit_page_thumbnails_decode_in_chromium(planted, digits_csv, chromium, tmp_path):
    store, _ = planted
    res = audit(store, "mri")
    page = tmp_path / "audit.html"
    out = res.write_html(page, top=5)
    html = page.read_text(encoding="utf-8")
    assert out.no_thumbnails is None and "no thumbnails" not in html
    shown = min(5, len(res.duplicates))
    assert shown >= 5  # the planted pairs are found (test_duplicates asserts which)
    for p in res.duplicates[:5]:
        assert p.id_a in html and p.id_b in html
    assert f"{len(res.duplicates) - 5} more pairs not shown" in html
    n_label = sum(len(v[:5]) for v in res.label_issues.values())
    assert out.n_thumbnails >= 2 * 5  # ten images for five pairs (fewer only if rows repeat)
    widths, dom = _decoded_widths(chromium, page, tmp_path)
    assert len(widths) == len(dom.srcs) == 2 * shown + n_label
    assert all(w > 0 for w in widths), widths  # every thumbnail decoded by the browser
    assert max(widths) <= THUMB_PX
    assert all(src.startswith("data:image/jpeg;base64,") for src in dom.srcs)
    thumb = Image.open(io.BytesIO(base64.b64decode(dom.srcs[0].split(",", 1)[1])))
    original = Image.open(Path(str(store)).parent / "images" / res.duplicates[0].id_a)
    assert original.size == (64, 64) and thumb.size == (THUMB_PX, THUMB_PX)  # enlarged
    assert abs(np.asarray(thumb.convert("L")).mean() - np.asarray(original.convert("L")).mean()) < 4

    # the digits CSV: label errors with given and suggested labels, one image each
    d_store, _, flipped, true = digits_csv
    res = audit(d_store, "digits", top=8)
    page = tmp_path / "digits.html"
    out = res.write_html(page, top=8)
    html = page.read_text(encoding="utf-8")
    issues = next(iter(res.label_issues.values()))
    assert len(issues) == 8 and out.n_thumbnails >= 8
    for i in issues:
        assert re.search(rf"{re.escape(i.id)}.*?<td>{i.given}</td><td>{i.suggested}</td>", html)
    n_issues = next(iter(res.label_summary.values()))["n_issues"]
    assert f"{n_issues - 8} more suspected label errors not shown" in html
    widths, _ = _decoded_widths(chromium, page, tmp_path)
    assert widths and all(w > 0 for w in widths)
    shot = tmp_path / "shot.png"
    run_chromium(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1100,1600")
    assert np.asarray(Image.open(shot).convert("L")).std() > 10


def test_gone_source_no_thumbnails_said_once(planted, tmp_path):
    """The images moved away: the page and the terminal say so once; the tables remain."""
    store, _ = planted
    images = Path(str(store)).parent / "images"
    hidden = tmp_path / "hidden"
    images.rename(hidden)
    try:
        page = tmp_path / "a.html"
        r = CliRunner().invoke(app, ["audit", str(store), "-d", "mri",
                                     "--html", str(page), "--html-top", "3"])  # fmt: skip
        elsewhere = audit(store, "mri").write_html(tmp_path / "b.html", source=hidden)
    finally:
        hidden.rename(images)
    assert elsewhere.no_thumbnails is None and elsewhere.n_thumbnails > 0  # source= overrides
    assert r.exit_code == 0, r.output
    html = page.read_text(encoding="utf-8")
    assert html.count("no thumbnails") == 1 and "<img" not in html
    assert r.output.count("no thumbnails") == 1
    assert "(0 thumbnails)" in r.output and "candidate duplicates" in html.lower()


def test_bad_html_options_refused_before_the_audit(planted, tmp_path):
    store, _ = planted
    r = CliRunner().invoke(
        app, ["audit", str(store), "-d", "mri", "--html", str(tmp_path / "a.txt")]
    )
    assert r.exit_code == 1 and "ending in .html" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["audit", str(store), "-d", "mri", "--html",
                                 str(tmp_path / "a.html"), "--html-top", "0"])  # fmt: skip
    assert r.exit_code == 1 and "at least 1" in r.output
    assert not (tmp_path / "a.html").exists()
