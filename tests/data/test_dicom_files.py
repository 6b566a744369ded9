"""DICOM files from pydicom's own bundled test set (``pydicom/data/test_files``, no download):
compressed transfer syntaxes decode with the `dicom` extra's plugins, multi-frame files are refused
in one line, and pydicom's warnings stay off the terminal (issue 23, item 4)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from embedstore.data import read_dicom
from embedstore.errors import BadImageError

pydicom = pytest.importorskip("pydicom")

BUNDLED = Path(pydicom.__file__).parent / "data" / "test_files"


def bundled(name: str) -> Path:
    """A file shipped inside the pydicom wheel (get_testdata_file would try to download others)."""
    path = BUNDLED / name
    if not path.is_file():
        pytest.skip(f"{name} is not bundled with this pydicom")
    return path


@pytest.mark.parametrize(
    "compressed",
    ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"],
)
def test_lossless_compressed_files_read_as_the_uncompressed_one(compressed):
    """JPEG-LS lossless, JPEG 2000 lossless and RLE hold the same pixels as MR_small.dcm, so
    every step after decoding (rescale, window, 8 bits) must give the same image."""
    pytest.importorskip("pylibjpeg")
    reference = read_dicom(bundled("MR_small.dcm"))
    got = read_dicom(bundled(compressed))
    assert got.shape == (64, 64) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, reference)


@pytest.mark.parametrize(
    "name,shape",
    [
        ("JPEGLSNearLossless_16.dcm", (50, 10)),  # JPEG-LS near-lossless, 16-bit
        ("JPGExtended.dcm", (1024, 256)),  # JPEG Extended (process 2 and 4), 12-bit
        ("SC_rgb_jls_lossy_line.dcm", (100, 100, 3)),  # colour JPEG-LS
    ],
)
def test_jpeg_ls_and_12_bit_jpeg_decode(name, shape):
    """The files that failed with pydicom alone ('all plugins are missing dependencies')."""
    pytest.importorskip("pylibjpeg")
    image = read_dicom(bundled(name))
    assert image.shape == shape and image.dtype == np.uint8
    assert image.max() > image.min()  # a real picture, not a blank frame


@pytest.mark.parametrize(
    "name,frames",
    [("rtdose.dcm", 15), ("SC_rgb_rle_2frame.dcm", 2), ("examples_ybr_color.dcm", 30)],
)
def test_multi_frame_files_are_refused_in_one_consistent_line(name, frames):
    """Grey and colour alike (the colour ones used to come back as a 4-D array)."""
    with pytest.raises(BadImageError) as info:
        read_dicom(bundled(name))
    message = str(info.value)
    assert f"holds {frames} frames" in message and "--skip-bad" in message
    assert "\n" not in message


def test_a_file_no_decoder_reads_is_one_line():
    """pydicom lists each plugin's failure on its own line; the message keeps to one."""
    with pytest.raises(BadImageError) as info:
        read_dicom(bundled("JPEG-lossy.dcm"))
    assert "\n" not in str(info.value) and "cannot read DICOM" in str(info.value)


@pytest.mark.parametrize("name", ["SC_rgb_jpeg.dcm", "MR_small_padded.dcm"])
def test_pydicom_warnings_do_not_reach_the_terminal(name):
    """Both files make pydicom warn (implicit VR where explicit was declared; padded pixels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping read_dicom fails the test
        image = read_dicom(bundled(name))
    assert image.size > 0
    with warnings.catch_warnings(record=True) as seen:  # they do warn without read_dicom
        warnings.simplefilter("always")
        assert pydicom.dcmread(bundled(name)).pixel_array.size
    assert seen
