"""Shared image reading: DICOM (MONOCHROME1/2, 8-16 bit, rescale, windowing, compressed), PNG, JPG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.data.images import ImageReadError, MissingDecoderError, read_header, read_image, resize_image

from .conftest import pydicom_data_file, write_dicom

RAMP8 = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))  # 8 x 64, left dark -> right bright


def test_real_cr_dicom_is_upright_bone_bright_lung_dark() -> None:
    image = read_image(pydicom_data_file("RG1_UNCR.dcm"))  # CR, MONOCHROME1, 15-bit, windowed
    assert image.dtype == np.float32 and image.shape == (1955, 1841)
    assert 0.0 <= image.min() and image.max() <= 1.0
    h, w = image.shape
    lungs = np.mean([image[int(0.3 * h):int(0.5 * h), int(0.15 * w):int(0.35 * w)].mean(),
                     image[int(0.3 * h):int(0.5 * h), int(0.65 * w):int(0.85 * w)].mean()])
    spine = image[int(0.3 * h):int(0.5 * h), int(0.47 * w):int(0.53 * w)].mean()
    abdomen = image[int(0.85 * h):int(0.95 * h), int(0.3 * w):int(0.7 * w)].mean()
    assert spine > lungs + 0.1  # mediastinum/spine (bone) brighter than lung fields
    assert abdomen > lungs + 0.1  # upright: the bright abdomen is at the bottom, lungs above it


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", RAMP8))
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", RAMP8, photometric="MONOCHROME1"))
    np.testing.assert_allclose(m2, RAMP8 / 255.0, atol=1e-6)
    np.testing.assert_allclose(m1, 1.0 - RAMP8 / 255.0, atol=1e-6)


def test_dicom_12_and_16_bit_and_rescale(tmp_path: Path) -> None:
    ramp12 = (RAMP8.astype(np.uint16) * 16)
    out12 = read_image(write_dicom(tmp_path / "a.dcm", ramp12, bits_stored=12))
    np.testing.assert_allclose(out12, ramp12 / 4095.0, atol=1e-6)
    ramp16 = RAMP8.astype(np.uint16) * 257
    np.testing.assert_allclose(read_image(write_dicom(tmp_path / "b.dcm", ramp16)), ramp16 / 65535.0, atol=1e-6)
    # slope 2 / intercept -100 maps the stored range linearly, so normalised values are unchanged
    out = read_image(write_dicom(tmp_path / "c.dcm", ramp12, bits_stored=12, RescaleSlope=2, RescaleIntercept=-100))
    np.testing.assert_allclose(out, ramp12 / 4095.0, atol=1e-5)


def test_dicom_window_is_applied(tmp_path: Path) -> None:
    ramp12 = (RAMP8.astype(np.uint16) * 16)  # 0 .. 4032
    out = read_image(write_dicom(tmp_path / "w.dcm", ramp12, bits_stored=12, WindowCenter=2000, WindowWidth=1000))
    assert out[0, 0] == 0.0 and out[0, -1] == 1.0  # clipped outside the window
    row = out[0]
    assert np.all(np.diff(row) >= 0)
    inside = (ramp12[0] > 1600) & (ramp12[0] < 2400)
    assert np.all((row[inside] > 0) & (row[inside] < 1))


def test_compressed_dicom_without_decoder_names_the_missing_decoder(tmp_path: Path) -> None:
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    path = write_dicom(tmp_path / "ls.dcm", RAMP8)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8not-really-jpeg-ls\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    from pydicom.pixels import get_decoder

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here; the missing-decoder path cannot be exercised")
    with pytest.raises(MissingDecoderError, match=r"JPEG-LS.*Install one of: .*(pylibjpeg|gdcm|pyjpegls)"):
        read_image(path)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_png_modes(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    if mode == "I;16":
        data = RAMP8.astype(np.uint16) * 257
        Image.fromarray(data).save(path)
        assert Image.open(path).mode.startswith("I")
        expected = data / 65535.0
    else:
        gray = Image.fromarray(RAMP8)
        img = gray.convert(mode)
        if mode == "RGBA":
            img.putalpha(128)  # alpha is ignored
        img.save(path)
        expected = RAMP8 / 255.0
    out = read_image(path)
    assert out.dtype == np.float32 and out.shape == RAMP8.shape
    np.testing.assert_allclose(out, expected, atol=1.5 / 255)


def test_jpg_and_header(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    Image.fromarray(RAMP8).convert("RGB").save(path, quality=95)
    out = read_image(path)
    assert out.shape == (8, 64) and abs(float(out.mean()) - RAMP8.mean() / 255) < 0.02
    header = read_header(path)
    assert (header.width, header.height, header.format) == (64, 8, "jpeg")
    dicom_header = read_header(write_dicom(tmp_path / "h.dcm", RAMP8))
    assert (dicom_header.width, dicom_header.height, dicom_header.format) == (64, 8, "dicom")


def test_bad_files_name_the_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(broken)
    with pytest.raises(ImageReadError, match="missing.dcm"):
        read_image(tmp_path / "missing.dcm")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_header(broken)


def test_resize() -> None:
    out = resize_image(np.ones((10, 20), np.float32) * 0.5, 8)
    assert out.shape == (8, 8) and np.allclose(out, 0.5)
