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

Together, uploads share one budget per process (:mod:`.budget`): at most
``UploadLimits.max_parallel_parses`` are parsed at once, holding at most ``parse_memory`` bytes;
beyond it an upload is refused at once (the service answers 503 with ``Retry-After``). Parsing is
linear in the body's size (no backtracking regular expression reads a cell), and the service runs it
in a worker thread, so that the event loop keeps answering. A file name or column name that is too
long or holds a control character is refused (:mod:`.names`).

Modules: :mod:`.limits` (the caps), :mod:`.budget` (uploads parsed at once and their memory),
:mod:`.names` (file and column names), :mod:`.formats` (which format a request carries),
:mod:`.csv_reader`, :mod:`.parquet_reader`, :mod:`.npz_reader` (one reader per format),
:mod:`.parse` (bytes -> dataset), :mod:`.packing` (the stored parsed form and its summary). Nothing
here imports FastAPI or the database.
"""

from datamarket.service.uploads.budget import Admission, ParseBudget, parse_budget, parse_cost
from datamarket.service.uploads.formats import FORMATS, MEDIA_TYPES, detect_format
from datamarket.service.uploads.limits import UploadLimits
from datamarket.service.uploads.names import check_columns, check_filename
from datamarket.service.uploads.packing import dataset_summary, pack_dataset, unpack_dataset
from datamarket.service.uploads.parse import parse_dataset

__all__ = [
    "FORMATS",
    "MEDIA_TYPES",
    "Admission",
    "ParseBudget",
    "UploadLimits",
    "check_columns",
    "check_filename",
    "dataset_summary",
    "detect_format",
    "pack_dataset",
    "parse_budget",
    "parse_cost",
    "parse_dataset",
    "unpack_dataset",
]
