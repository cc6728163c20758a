"""Visual feature stores: ``(group, node) -> (views, dim)`` float32 arrays.

``group`` is the Matterport3D scan for R2R and the graph name for Street View; ``node`` is the viewpoint or
panorama id. R2R panoramas have 36 views: 12 headings x 3 elevations, view index
``12 * elevation_level + heading_step`` with elevation levels -30, 0, +30 degrees and heading steps of 30 degrees
clockwise from heading 0.

Stores:
- ``SyntheticFeatures``: deterministic pseudo-random vectors derived from the ids. They carry **no visual
  information**; results obtained with them come from language and path geometry alone.
- ``TsvFeatures``: the community TSV format of ``ResNet-152-imagenet.tsv`` (Matterport3D simulator): tab-separated,
  no header, columns ``scanId, viewpointId, image_w, image_h, vfov, features`` where ``features`` is the base64 of
  ``views x dim`` little-endian float32 values. Read streaming, one line at a time.
- ``CachedFeatures``: the compact store written by ``valan features convert`` / ``valan features extract``: a folder
  with ``features.npy`` (``(N, views, dim)`` float32 or float16, opened memory-mapped, so a table costs only the
  rows it gathers) and ``index.json`` (``keys``: ``[group, node]`` per row, in row order, plus ``views``, ``dim``,
  ``dtype``, ``source`` and how it was made).

``open_feature_store(spec)`` picks one from a command-line value.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import os
import shutil
import sys
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from valan.errors import InputError
from valan.io import current_umask, read_json, write_json

R2R_VIEWS = 36
R2R_HEADINGS = 12
R2R_ELEVATIONS_DEG = (-30.0, 0.0, 30.0)


def r2r_view_index(elevation_level: int, heading_step: int) -> int:
    """View index of elevation level (0: -30, 1: 0, 2: +30 degrees) and heading step (30 degrees each)."""
    return R2R_HEADINGS * elevation_level + heading_step


class FeatureStore(ABC):
    """Per-node visual features of ``views`` views, each a ``dim``-vector."""

    views: int
    dim: int
    synthetic: bool = False

    @abstractmethod
    def get(self, group: str, node: str) -> np.ndarray:
        """Features of one node, shape ``(views, dim)`` float32; ``InputError`` when the node is missing."""

    def table(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """Stack the features of ``keys`` into a ``(len(keys), views, dim)`` float32 table."""
        out = np.empty((len(keys), self.views, self.dim), dtype=np.float32)
        for i, (group, node) in enumerate(keys):
            out[i] = self.get(group, node)
        return out


# What a command prints after a run or evaluation on synthetic features (SyntheticFeatures or SDR's feature maps).
SYNTHETIC_NOTE = ("note: synthetic features carry no visual information, so these results come from language (and "
                  "geometry) alone; the vectors at most identify viewpoints")


class SyntheticFeatures(FeatureStore):
    """Deterministic stand-in features: unit-variance Gaussian vectors seeded by a hash of ``(group, node)``.

    They carry no visual information. Every run, process and machine sees the same vectors for the same ids.
    """

    synthetic = True

    def __init__(self, dim: int = 64, views: int = R2R_VIEWS, seed: int = 0):
        self.dim, self.views, self.seed = dim, views, seed

    def get(self, group: str, node: str) -> np.ndarray:
        digest = hashlib.blake2b(f"{self.seed}/{group}/{node}".encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        return rng.standard_normal((self.views, self.dim), dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Community TSV format
# ----------------------------------------------------------------------------------------------------------------

TSV_FIELDS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")


def _allow_large_csv_fields() -> None:
    """Let the csv module read one ``features`` field of several hundred kilobytes (36 x 2048 float32 in base64)."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:  # platforms where the limit must fit a C long
            limit //= 2


class TsvFeatures(FeatureStore):
    """Features in the community TSV format, read streaming (one line at a time).

    ``rows()`` streams every row; ``get`` reads one line by byte offset (the offsets, one integer per node, are
    indexed on the first call); ``table`` streams the file once into the requested table; ``load()`` builds an
    in-memory dict only when asked. A first line starting with ``scanId<TAB>`` is taken as a header and skipped.
    ``dim`` is inferred from the first row (``len(features) / views``). Errors name the file, line and field.
    """

    def __init__(self, path: str | os.PathLike, views: int = R2R_VIEWS):
        self.path = Path(path)
        self.views = views
        if not self.path.is_file():
            raise InputError("feature file not found", source=str(self.path))
        _allow_large_csv_fields()
        self.dim = 0
        first = next(self.rows(), None)
        if first is None:
            raise InputError("no feature rows", source=str(self.path))
        self.dim = first[2].shape[1]
        self._offsets: dict[tuple[str, str], tuple[int, int]] | None = None

    def _lines(self) -> Iterator[tuple[int, int, bytes]]:
        """``(line number, byte offset, raw line)`` of every non-blank data line."""
        with self.path.open("rb", buffering=1 << 20) as f:
            offset = 0
            for lineno, raw in enumerate(f, 1):
                start, offset = offset, offset + len(raw)
                if (len(raw) <= 2 and not raw.strip()) or (lineno == 1 and raw.startswith(b"scanId\t")):
                    continue
                yield lineno, start, raw

    def _fields(self, lineno: int, raw: bytes) -> tuple[list[str], bytes]:
        """The five text fields and the raw ``features`` field of one line.

        Lines are split on tabs (the community files have no quoting: ids, numbers and base64 never need it);
        a line holding a double quote goes through the csv module, which undoes quoting.
        """
        line = raw.rstrip(b"\r\n")
        if b'"' in line:
            parts = [field.encode("utf-8", "surrogateescape")
                     for field in next(csv.reader([line.decode("utf-8", "surrogateescape")], delimiter="\t"))]
        else:
            parts = line.split(b"\t")
        if len(parts) != len(TSV_FIELDS):
            raise InputError(f"line {lineno}: expected {len(TSV_FIELDS)} tab-separated fields "
                             f"({', '.join(TSV_FIELDS)}), found {len(parts)}", source=str(self.path))
        try:
            return [part.decode("utf-8") for part in parts[:5]], parts[5]
        except UnicodeDecodeError:
            raise InputError(f"line {lineno}: not UTF-8 text", source=str(self.path)) from None

    def _parse(self, lineno: int, raw: bytes) -> tuple[str, str, np.ndarray]:
        """``(scanId, viewpointId, features (views, dim) float32)`` of one line, every field checked."""
        fields, encoded = self._fields(lineno, raw)
        where = f"line {lineno} field"
        for name in ("image_w", "image_h", "vfov"):
            value = fields[TSV_FIELDS.index(name)]
            try:
                float(value)
            except ValueError:
                raise InputError(f"{where} {name}: not a number: {value[:40]!r}", source=str(self.path)) from None
        encoded = encoded.strip()
        if encoded.startswith(b"b'") and encoded.endswith(b"'"):  # written by Python 3 as str(bytes)
            encoded = encoded[2:-1]
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InputError(f"{where} features: bad base64 ({e})", source=str(self.path)) from None
        if len(data) % 4:
            raise InputError(f"{where} features: {len(data)} bytes is not a whole number of float32 values",
                             source=str(self.path))
        values = len(data) // 4
        if values == 0 or values % self.views:
            raise InputError(f"{where} features: {values} float32 values are not divisible into {self.views} views",
                             source=str(self.path))
        dim = values // self.views
        if self.dim and dim != self.dim:
            raise InputError(f"{where} features: {values} float32 values = {self.views} x {dim}, but earlier rows "
                             f"have {self.views} x {self.dim}", source=str(self.path))
        features = np.frombuffer(data, dtype="<f4").reshape(self.views, dim).astype(np.float32)
        return fields[0], fields[1], features

    def count(self) -> int:
        """Number of data rows (one pass over the file, nothing decoded)."""
        return sum(1 for _ in self._lines())

    def rows(self) -> Iterator[tuple[str, str, np.ndarray]]:
        """Stream ``(group, node, features (views, dim) float32)`` in file order."""
        for lineno, _, raw in self._lines():
            yield self._parse(lineno, raw)

    def keys(self) -> list[tuple[str, str]]:
        """``(group, node)`` of every row in file order (features are not decoded)."""
        return [tuple(self._fields(lineno, raw)[0][:2]) for lineno, _, raw in self._lines()]

    def _index_offsets(self) -> dict[tuple[str, str], tuple[int, int]]:
        """``{(group, node): (line number, byte offset)}`` of the first row of each node."""
        if self._offsets is None:
            offsets: dict[tuple[str, str], tuple[int, int]] = {}
            for lineno, offset, raw in self._lines():
                group, node = self._fields(lineno, raw)[0][:2]
                offsets.setdefault((group, node), (lineno, offset))
            self._offsets = offsets
        return self._offsets

    def _missing(self, group: str, node: str) -> InputError:
        return InputError(f"no features for node {node!r} of group {group!r}", source=str(self.path))

    def get(self, group: str, node: str) -> np.ndarray:
        where = self._index_offsets().get((group, node))
        if where is None:
            raise self._missing(group, node)
        lineno, offset = where
        with self.path.open("rb") as f:
            f.seek(offset)
            return self._parse(lineno, f.readline())[2]

    def table(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """One streaming pass over the file fills the ``(len(keys), views, dim)`` table (memory: the table)."""
        positions: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(keys):
            positions.setdefault((key[0], key[1]), []).append(i)
        out = np.empty((len(keys), self.views, self.dim), dtype=np.float32)
        for group, node, features in self.rows():
            for i in positions.pop((group, node), ()):
                out[i] = features
        if positions:
            raise self._missing(*next(iter(positions)))
        return out

    def load(self) -> dict[tuple[str, str], np.ndarray]:
        """Every row in an in-memory dict ``{(group, node): (views, dim)}`` (memory: the whole file's features)."""
        return {(group, node): features for group, node, features in self.rows()}


# ----------------------------------------------------------------------------------------------------------------
# Compact cached store: memory-mapped .npy + JSON index
# ----------------------------------------------------------------------------------------------------------------

STORE_FORMAT = "valan-features"
STORE_VERSION = 1
STORE_ARRAY = "features.npy"
STORE_INDEX = "index.json"
STORE_DTYPES = ("float32", "float16")


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a cached feature store folder."""
    path = Path(path)
    return (path / STORE_INDEX).is_file() and (path / STORE_ARRAY).is_file()


class StoreWriter:
    """Write a cached store atomically: ``count`` rows of ``(views, dim)`` are appended to ``features.npy`` (an
    ``.npy`` header for the final shape, then the rows in order) inside a temporary folder beside ``out``; on
    success the index is written and the folder renamed to ``out``; on error the temporary folder is removed and
    ``out`` is left as it was.

    Memory: one row. Rows are written with plain file writes rather than through a writable memory map, whose
    written pages would stay in the process's resident memory until the end (measured: 1.04 x the array).
    ``overwrite`` replaces an existing store (never a folder that is not a store).
    """

    def __init__(self, out: str | os.PathLike, count: int, views: int, dim: int, *, dtype: str = "float32",
                 source: str = "", metadata: dict[str, Any] | None = None, overwrite: bool = False):
        if dtype not in STORE_DTYPES:
            raise InputError(f"dtype must be one of {', '.join(STORE_DTYPES)}, not {dtype!r}")
        self.out = Path(out)
        check_store_destination(self.out, overwrite)
        self.count, self.views, self.dim, self.dtype = count, views, dim, dtype
        self._stored = np.dtype(dtype).newbyteorder("<")  # .npy files written here are little-endian everywhere
        self.metadata = {"source": source, **(metadata or {})}
        self.keys: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self._tmp: Path | None = None
        self._file: Any = None

    def __enter__(self) -> "StoreWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent))
        os.chmod(self._tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; give the folder mkdir's permissions
        self._file = (self._tmp / STORE_ARRAY).open("wb")
        np.lib.format.write_array_header_1_0(self._file, {
            "descr": np.lib.format.dtype_to_descr(self._stored), "fortran_order": False,
            "shape": (self.count, self.views, self.dim)})
        return self

    def write(self, group: str, node: str, features: np.ndarray) -> None:
        """Append the next row; ``InputError`` on a duplicate key or a wrong shape."""
        assert self._file is not None, "use StoreWriter as a context manager"
        key = (group, node)
        if key in self._seen:
            raise InputError(f"duplicate features for node {node!r} of group {group!r}", source=self.metadata["source"])
        if features.shape != (self.views, self.dim):
            raise InputError(f"features of node {node!r} of group {group!r} have shape {features.shape}, "
                             f"expected ({self.views}, {self.dim})", source=self.metadata["source"])
        if len(self.keys) >= self.count:
            raise InputError(f"more rows than the {self.count} expected", source=self.metadata["source"])
        self._file.write(np.ascontiguousarray(features, dtype=self._stored).tobytes())
        self.keys.append(key)
        self._seen.add(key)

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._tmp is not None and self._file is not None
        try:
            if exc_type is None:
                if len(self.keys) != self.count:
                    raise InputError(f"wrote {len(self.keys)} rows, expected {self.count} (file changed while "
                                     "reading?)", source=self.metadata["source"])
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                write_json(self._tmp / STORE_INDEX, {
                    "format": STORE_FORMAT, "version": STORE_VERSION, "views": self.views, "dim": self.dim,
                    "dtype": self.dtype, "count": self.count, **self.metadata,
                    "keys": [list(key) for key in self.keys]}, indent=None)
                _replace_folder(self._tmp, self.out)
        finally:
            self._file.close()
            if self._tmp.exists():
                shutil.rmtree(self._tmp, ignore_errors=True)


def check_store_destination(out: Path, overwrite: bool) -> None:
    """Refuse to write over an existing path unless ``overwrite`` and it is a feature store (checked before work)."""
    if out.exists() and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", source=str(out))
    if out.exists() and not is_store(out):
        raise InputError("exists and is not a feature store; refusing to replace it", source=str(out))


def _replace_folder(new: Path, out: Path) -> None:
    """Rename ``new`` to ``out``; an existing ``out`` is moved aside first and deleted after the swap."""
    if not out.exists():
        os.replace(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)


def convert_tsv(tsv: str | os.PathLike, out: str | os.PathLike, *, views: int = R2R_VIEWS, dtype: str = "float32",
                overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Stream a community TSV into a cached store at ``out``; returns ``{rows, views, dim, dtype, bytes}``.

    Two passes over the file (count the rows, then copy them); memory stays at one row plus the mapped pages.
    """
    check_store_destination(Path(out), overwrite)
    source = TsvFeatures(tsv, views=views)
    count = source.count()
    with StoreWriter(out, count, views, source.dim, dtype=dtype, source=str(Path(tsv).resolve()),
                     metadata={"made_by": "valan features convert"}, overwrite=overwrite) as writer:
        for group, node, features in tqdm(source.rows(), total=count, desc="convert", unit="node", disable=not progress):
            writer.write(group, node, features)
    return {"rows": count, "views": views, "dim": source.dim, "dtype": dtype,
            "bytes": count * views * source.dim * np.dtype(dtype).itemsize}


class CachedFeatures(FeatureStore):
    """A store folder written by ``valan features convert``/``extract``, opened memory-mapped (read-only).

    ``get`` and ``table`` return float32 whatever the stored dtype. ``metadata`` holds the index's other fields
    (``source``, and for extracted stores the layout, headings, pitches, fov, model).
    """

    def __init__(self, store_dir: str | os.PathLike):
        self.path = Path(store_dir)
        index = read_json(self.path / STORE_INDEX)
        where = str(self.path / STORE_INDEX)
        if not isinstance(index, dict) or index.get("format") != STORE_FORMAT:
            raise InputError(f"not a {STORE_FORMAT} index", source=where)
        try:
            self.views, self.dim = int(index["views"]), int(index["dim"])
            keys = [(str(g), str(n)) for g, n in index["keys"]]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"malformed index ({type(e).__name__}: {e})", source=where) from None
        array_path = self.path / STORE_ARRAY
        try:
            self._array = np.load(array_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read the feature array ({e})", source=str(array_path)) from None
        if self._array.shape != (len(keys), self.views, self.dim):
            raise InputError(f"array shape {self._array.shape} does not match the index "
                             f"({len(keys)}, {self.views}, {self.dim})", source=str(array_path))
        self._rows = {key: i for i, key in enumerate(keys)}
        self._keys = keys
        self.metadata = {k: v for k, v in index.items() if k != "keys"}

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> list[tuple[str, str]]:
        """``(group, node)`` of every row, in row order."""
        return list(self._keys)

    def _row(self, group: str, node: str) -> int:
        row = self._rows.get((group, node))
        if row is None:
            raise InputError(f"no features for node {node!r} of group {group!r}", source=str(self.path))
        return row

    def get(self, group: str, node: str) -> np.ndarray:
        return np.array(self._array[self._row(group, node)], dtype=np.float32)

    def table(self, keys: Sequence[tuple[str, str]]) -> np.ndarray:
        """Gather ``keys`` into a ``(len(keys), views, dim)`` float32 table. Memory: the table.

        Rows are read in file order with positioned reads straight into the table (float16 stores through a
        one-row buffer), not through the memory map, whose pages would stay resident beside the table.
        """
        rows = np.fromiter((self._row(g, n) for g, n in keys), dtype=np.int64, count=len(keys))
        out = np.empty((len(keys), self.views, self.dim), dtype=np.float32)
        direct = self._array.dtype == np.dtype("<f4")
        buffer = np.empty((self.views, self.dim), dtype=self._array.dtype)
        row_bytes = buffer.nbytes
        with (self.path / STORE_ARRAY).open("rb", buffering=0) as f:
            for i in np.argsort(rows, kind="stable"):
                target = out[i] if direct else buffer
                f.seek(self._array.offset + int(rows[i]) * row_bytes)
                if f.readinto(memoryview(target).cast("B")) != row_bytes:
                    raise InputError("feature array is truncated", source=str(self.path / STORE_ARRAY))
                if not direct:
                    out[i] = buffer
        return out


def open_feature_store(spec: str | os.PathLike | None, *, views: int = R2R_VIEWS, dim: int = 64) -> FeatureStore:
    """The store named on the command line: ``None``/``"synthetic"`` -> ``SyntheticFeatures(dim, views)``,
    a ``.tsv`` file -> ``TsvFeatures(views=views)``, a store folder -> ``CachedFeatures`` (its own views and dim).
    """
    if spec is None or str(spec) == "synthetic":
        return SyntheticFeatures(dim=dim, views=views)
    path = Path(spec)
    if path.is_dir():
        if not is_store(path):
            raise InputError(f"not a feature store (no {STORE_INDEX} and {STORE_ARRAY}); make one with "
                             "`valan features convert` or `valan features extract`", source=str(path))
        return CachedFeatures(path)
    if path.suffix.lower() == ".tsv":
        return TsvFeatures(path, views=views)
    if not path.exists():
        raise InputError("feature store not found", source=str(path))
    raise InputError("unknown feature store: expected 'synthetic', a .tsv file or a store folder", source=str(path))
