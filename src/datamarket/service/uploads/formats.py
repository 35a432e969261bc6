"""Which format an upload is in: an explicit ``format``, else the Content-Type, else the file name."""

from __future__ import annotations

from datamarket.core.errors import UploadError

FORMATS = ("csv", "npz", "parquet")
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/x-npz": "npz",
    "application/zip": "npz",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


def detect_format(fmt: str | None, media_type: str | None, filename: str | None) -> str:
    """The upload format from an explicit ``format``, the Content-Type or the file name suffix.

    >>> detect_format(None, "text/csv; charset=utf-8", None), detect_format(None, None, "a.NPZ")
    ('csv', 'npz')
    """
    if fmt:
        if fmt.lower() not in FORMATS:
            raise UploadError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt.lower()
    base = (media_type or "").split(";", 1)[0].strip().lower()
    if base in MEDIA_TYPES:
        return MEDIA_TYPES[base]
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix in FORMATS:
        return suffix
    raise UploadError(
        "format", "unknown upload format: pass ?format=csv|npz|parquet or a matching Content-Type"
    )
