"""Fixtures for the dataset tests: real label tables laid out like the datasets, and tiny image writers."""

from __future__ import annotations

import gzip
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

TXV_DATA = Path(pytest.importorskip("torchxrayvision").__file__).parent / "data"


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    patient_id: str = "p0",
    view: str = "PA",
    **elements: object,
) -> Path:
    """Write an uncompressed (Explicit VR Little Endian) grayscale DICOM; extra keywords become elements."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.ViewPosition, ds.Modality = patient_id, view, "CR"
    allocated = 8 if pixels.dtype == np.uint8 else 16
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored = allocated, bits_stored or allocated
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def real_nih_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """NIH label tables from torchxrayvision, decompressed under their distributed names."""
    root = tmp_path_factory.mktemp("nih")
    for name in ("Data_Entry_2017_v2020.csv", "BBox_List_2017.csv"):
        with gzip.open(TXV_DATA / f"{name}.gz") as src, open(root / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return root


@pytest.fixture(scope="session")
def real_rsna_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RSNA stage-2 labels extracted to ``stage_2_train_labels.csv``."""
    root = tmp_path_factory.mktemp("rsna")
    with zipfile.ZipFile(TXV_DATA / "kaggle_stage_2_train_labels.csv.zip") as zf:
        (root / "stage_2_train_labels.csv").write_bytes(zf.read("stage_2_train_labels.csv"))
    return root


@pytest.fixture(scope="session")
def real_siim_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SIIM RLE table decompressed to ``train-rle.csv`` (stage-2 content under the stage-1 header)."""
    root = tmp_path_factory.mktemp("siim")
    with gzip.open(TXV_DATA / "siim-pneumothorax-train-rle.csv.gz") as src, open(root / "train-rle.csv", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return root


@pytest.fixture()
def dicom_writer() -> Callable[..., Path]:
    """The :func:`write_dicom` helper."""
    return write_dicom


def pydicom_data_file(name: str) -> Path:
    """Path of a file shipped by the ``pydicom-data`` package (skip when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("pydicom-data")
    except PackageNotFoundError:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data)")
    for f in dist.files or ():
        if f.name == name:
            return Path(str(dist.locate_file(f)))
    pytest.skip(f"{name} not in pydicom-data")
    raise AssertionError  # unreachable
