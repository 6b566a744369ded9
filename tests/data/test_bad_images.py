"""Bad and unusual image files, made for real in each test: each one is either read correctly
(checked against an independent computation) or is one clear error naming the file, and
`embedstore extract` turns it into one line and exit 1, or a recorded missing row with --skip-bad.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from embedstore import open_store
from embedstore.cli.main import app
from embedstore.data import ImageFolderSource, read_image
from embedstore.data.images import MAX_IMAGE_PIXELS
from embedstore.errors import BadImageError
from tests.data.conftest import TINY, good_folder, save_png

runner = CliRunner()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, width: int = 12_000, height: int = 12_000) -> Path:
    """A valid 1-bit grey PNG of width x height (144 Mpx), 20 kB on disk: streamed through zlib
    one row at a time, as a decompression bomb would be made."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed pixels
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    return path


def _truncated(path: Path) -> None:
    save_png(path.with_suffix(".tmp.jpg"), 90, size=(40, 40))
    data = path.with_suffix(".tmp.jpg").read_bytes()
    path.with_suffix(".tmp.jpg").unlink()
    path.write_bytes(data[: len(data) // 2])


BAD = {
    "zero-byte": ("0.jpg", lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "truncated": ("0.jpg", _truncated, "cannot read image"),
    "text named .jpg": (
        "0.jpg",
        lambda p: p.write_text("patient,label\n1,0\n"),
        "is not an image Pillow can read",
    ),
    "decompression bomb": ("0.png", write_bomb_png, "over the limit of 89,478,485"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_png_is_a_real_12000_square_image(tmp_path):
    with Image.open(write_bomb_png(tmp_path / "bomb.png")) as img:  # header only: no decoding
        assert img.size == (12_000, 12_000) and img.mode == "1"
    assert 12_000 * 12_000 > MAX_IMAGE_PIXELS


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_image_is_one_error_naming_the_file(tmp_path, kind):
    name, make, message = BAD[kind]
    make(tmp_path / name)
    with pytest.raises(BadImageError, match=re.escape(message)) as info:
        read_image(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)


@pytest.mark.parametrize("kind", list(BAD))
def test_extract_stops_with_one_line_then_skip_bad_records_the_row(tmp_path, kind):
    root = good_folder(tmp_path / "imgs")
    name, make, message = BAD[kind]
    make(root / "pos" / f"bad_{name}")
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--source", str(root)]
    args += ["--backbone", TINY, "--workers", "0", "--device", "cpu", "--batch-size", "2"]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    lines = [ln for ln in failed.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"bad_{name}" in lines[0] and message in lines[0]
    done = runner.invoke(app, [*args, "--skip-bad"])
    assert done.exit_code == 0, done.output
    store = open_store(tmp_path / "s.zarr")
    missing = store.missing("ds", TINY)
    assert [m["id"] for m in missing] == [f"pos/bad_{name}"] and message in missing[0]["reason"]
    assert store.array_info("ds", TINY).complete


def test_pixel_limit_is_set_by_the_environment(tmp_path, monkeypatch):
    save_png(tmp_path / "a.png", 7, size=(20, 10))  # 200 pixels
    monkeypatch.setenv("EMBEDSTORE_MAX_IMAGE_PIXELS", "199")
    with pytest.raises(BadImageError, match=r"20 x 10 = 200 pixels, over the limit of 199"):
        read_image(tmp_path / "a.png")
    monkeypatch.setenv("EMBEDSTORE_MAX_IMAGE_PIXELS", "200")
    assert read_image(tmp_path / "a.png").size == (20, 10)


def _odd_images(folder: Path) -> dict[str, np.ndarray]:
    """Write CMYK, 16-bit grey, RGBA, palette and 1x1 images; return the RGB each must give,
    computed without Pillow's conversions."""
    folder.mkdir(parents=True)
    expected = {}
    c, m, y, k = 30, 200, 90, 40  # Pillow's cmyk2rgb: R = (255 - K) - C * (255 - K) / 255
    Image.new("CMYK", (16, 12), (c, m, y, k)).save(folder / "cmyk.jpg", quality=100)
    expected["cmyk.jpg"] = np.array([(255 - k) - v * (255 - k) / 255 for v in (c, m, y)])
    grey16 = np.zeros((12, 16), dtype=np.uint16)
    grey16[:, 8:] = 40_000  # two values: min..max scaling maps them to 0 and 255
    Image.fromarray(grey16).save(folder / "grey16.png")
    assert Image.open(folder / "grey16.png").mode.startswith("I")
    expected["grey16.png"] = np.where(np.arange(16) < 8, 0, 255)[None, :, None]
    rgba = np.zeros((12, 16, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = (10, 120, 250), np.arange(16, dtype=np.uint8)[None, :] * 16
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    expected["rgba.png"] = np.array([10, 120, 250])  # alpha dropped, colour kept
    pal = Image.new("P", (16, 12))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    pal.putdata([(i % 16) // 6 for i in range(16 * 12)])  # indices 0, 1, 2 by column
    pal.save(folder / "palette.png")
    lut = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    expected["palette.png"] = lut[np.arange(16) // 6][None, :, :]
    save_png(folder / "one.png", 77, size=(1, 1))
    expected["one.png"] = np.array([77, 77, 77])
    return expected


def test_unusual_modes_decode_to_the_right_rgb(tmp_path):
    expected = _odd_images(tmp_path / "cls_a")
    save_png(tmp_path / "cls_b" / "x.png", 5)
    src = ImageFolderSource(tmp_path)
    for name, want in expected.items():
        row = int(np.flatnonzero(src.ids == f"cls_a/{name}")[0])
        img = src.load_rgb(row)
        assert img.mode == "RGB"
        got = np.asarray(img).astype(np.float64)
        tol = 3 if name.endswith(".jpg") else 0  # JPEG is lossy even at quality 100
        assert np.abs(got - np.broadcast_to(want, got.shape)).max() <= tol, name


def test_unusual_modes_extract_without_missing_rows(tmp_path):
    _odd_images(tmp_path / "imgs" / "a")
    save_png(tmp_path / "imgs" / "b" / "x.png", 5)
    save_png(tmp_path / "imgs" / "b" / "y.png", 9, mode="L")
    args = ["extract", str(tmp_path / "s.zarr"), "--dataset", "ds", "--source"]
    args += [str(tmp_path / "imgs"), "--backbone", TINY, "--workers", "0", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "s.zarr")
    assert len(store.ids("ds")) == 7 and store.missing("ds", TINY) == []
    X = store.embeddings("ds", TINY)
    assert np.isfinite(X).all() and len(np.unique(X.round(3), axis=0)) == 7


def test_hidden_and_system_files_are_ignored(tmp_path):
    root = good_folder(tmp_path / "imgs", per_class=2)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + b"\0" * 20)
    (root / "neg" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "neg" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 30)
    (root / "neg" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (root / "pos" / "._0.png").write_bytes(b"\0\5\26\7" + b"\0" * 40)  # AppleDouble
    (root / "pos" / ".hidden.png").write_bytes(b"")
    save_png(root / "pos" / ".thumbs" / "0.png", 1)
    save_png(root / "__MACOSX" / "pos" / "._1.png", 1)
    save_png(root / "__MACOSX" / "pos" / "1.png", 1)
    save_png(root / "neg" / "@eaDir" / "0.png", 1)
    src = ImageFolderSource(root)
    assert src.class_names == ("neg", "pos")
    assert src.ids.tolist() == ["neg/0.png", "neg/1.png", "pos/0.png", "pos/1.png"]
    assert all(src.load_rgb(i).mode == "RGB" for i in range(len(src)))
