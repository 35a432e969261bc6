"""Dataset uploads: CSV, NPZ and Parquet bytes -> a validated :class:`~datamarket.core.types.Dataset`.

Formats
-------
``csv``      a header row, numeric cells; the ``label`` column (name configurable) holds labels and an
             optional ``group`` column demographic groups; every other column is a feature.
``npz``      arrays ``features`` (2-d) and optionally ``labels`` and ``groups`` (``allow_pickle`` off).
``parquet``  the same columns as CSV (read with pyarrow).

Anything else, a non-numeric or non-finite feature, ragged rows or an empty table raises
:class:`~datamarket.core.errors.UploadError` naming ``file`` (or ``format``; the service answers 422
and stores nothing). Size limits are enforced by the caller while reading the request body (413) and
here while decompressing (:class:`UploadLimits`: header-declared sizes are checked before a byte is
inflated). :func:`pack_dataset` is the parsed form the service stores with each upload, so that
rounds never parse an upload again.

Modules: :mod:`.limits` (the caps), :mod:`.formats` (which format a request carries),
:mod:`.csv_reader`, :mod:`.parquet_reader`, :mod:`.npz_reader` (one reader per format),
:mod:`.parse` (bytes -> dataset), :mod:`.packing` (the stored parsed form and its summary). Nothing
here imports FastAPI or the database.
"""

from datamarket.service.uploads.formats import FORMATS, MEDIA_TYPES, detect_format
from datamarket.service.uploads.limits import UploadLimits
from datamarket.service.uploads.packing import dataset_summary, pack_dataset, unpack_dataset
from datamarket.service.uploads.parse import parse_dataset

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "UploadLimits",
    "dataset_summary",
    "detect_format",
    "pack_dataset",
    "parse_dataset",
    "unpack_dataset",
]
