"""Build DICOM files in memory from real pixels (pydicom), for the io and consistency tests."""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def make_dicom(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    modality: str = "DX",
    bits: int = 16,
    window: tuple[float, float] | None = None,
    frames: int = 1,
    with_pixels: bool = True,
    slope: float = 1.0,
    intercept: float = 0.0,
    age: str | None = None,
    sex: str | None = None,
    view: str | None = None,
    body_part: str = "CHEST",
) -> bytes:
    """A minimal valid DICOM with patient identifiers set, so tests can check they never leak."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-123456"
    ds.PatientBirthDate = "20200101"
    ds.AccessionNumber = "ACC-987"
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    if age is not None:
        ds.PatientAge = age  # DICOM Age String, e.g. "045Y"
    if sex is not None:
        ds.PatientSex = sex
    if view is not None:
        ds.ViewPosition = view
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if slope != 1.0 or intercept != 0.0:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if frames > 1:
        ds.NumberOfFrames = frames
    if with_pixels:
        dtype = np.uint16 if bits > 8 else np.uint8
        arr = np.asarray(pixels).astype(dtype)
        if frames > 1 and arr.ndim == 2:
            arr = np.stack([arr] * frames)
        ds.PixelData = arr.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
