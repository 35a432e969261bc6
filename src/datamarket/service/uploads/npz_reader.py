"""NPZ uploads: member by member, each bounded by its ``.npy`` header before it is decompressed."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import IO

import numpy as np

from datamarket.core.errors import InvalidInputError, UploadError
from datamarket.core.types import Dataset
from datamarket.service.uploads.limits import UploadLimits

NPZ_ARRAYS = ("features", "labels", "groups")


def read_npz(data: bytes, limits: UploadLimits) -> Dataset:
    """Read an NPZ member by member, each bounded by its header before it is decompressed.

    Only stored or deflated members named ``features.npy``, ``labels.npy``, ``groups.npy`` are read;
    each ``.npy`` header must declare a numeric dtype and at most ``limits.max_cells`` elements
    (``labels`` and ``groups``: at most ``limits.max_rows``, one a row), and
    exactly that many bytes are decompressed (never more: the zip reader stops at the declared size,
    and a member that holds less or fails its CRC is malformed).
    """
    if not data.startswith(b"PK"):
        raise UploadError("file", "malformed NPZ: not a zip archive (a bare .npy must be zipped)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            arrays = _members(zf, limits)
    except UploadError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise UploadError("file", f"malformed NPZ: {exc}") from None
    try:
        return Dataset(arrays["features"], arrays.get("labels"), arrays.get("groups"))
    except InvalidInputError as exc:
        raise UploadError("file", f"{exc.field}: {exc.message}") from None


def _members(zf: zipfile.ZipFile, limits: UploadLimits) -> dict[str, np.ndarray]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    allowed = {f"{k}.npy" for k in NPZ_ARRAYS}
    if "features.npy" not in names or len(set(names)) != len(names) or not set(names) <= allowed:
        raise UploadError("file", "NPZ must hold 'features' and optionally 'labels', 'groups' (.npy members)")
    arrays = {}
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UploadError(
                "file", f"NPZ member {info.filename!r}: compression {info.compress_type} unsupported"
            )
        if info.file_size > limits.max_decompressed + 4096:
            raise UploadError(
                "file",
                f"NPZ member {info.filename!r} expands to {info.file_size} bytes (limit "
                f"{limits.max_decompressed})",
            )
        with zf.open(info) as f:
            arrays[info.filename[:-4]] = _read_npy(f, info.filename, limits)
    return arrays


def _read_npy(f: IO[bytes], name: str, limits: UploadLimits) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise UploadError("file", f"array {name[:-4]!r} must be numeric, got dtype {dtype}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    cap = limits.max_cells if name == "features.npy" else limits.max_rows  # labels, groups: one a row
    if count > cap:
        raise UploadError("file", f"array {name[:-4]!r} has {count} elements (limit {cap})")
    nbytes = count * dtype.itemsize
    buf = f.read(nbytes)
    if len(buf) != nbytes or f.read(1):
        raise ValueError(f"member {name!r} does not hold the {nbytes} bytes its header declares")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")
