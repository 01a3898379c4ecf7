"""Reading what a pickle or joblib file holds without running any of it.

`scan_pickle` replays the file with the standard library's pure-Python unpickler, except that every global the
file names (its GLOBAL and STACK_GLOBAL opcodes: classes, functions) becomes an inert stand-in that only records
its arguments and state. Nothing is imported and no code from the file runs, yet the scan sees the modules the
file needs and an object tree from which an estimator's class, `_sklearn_version`, `n_features_in_` and
`feature_names_in_` are read. joblib files interleave raw array bytes with the pickle stream (after each
`NumpyArrayWrapper`) and may be compressed; both are read the way joblib reads them. Loading a model for real is
`loaders.py`, in the replica.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import pickle
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Self, cast

_JOBLIB_ARRAY_WRAPPERS = frozenset(
    {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper")}
)
# Prefixes of joblib's compressed files (joblib/compressor.py); zlib is checked by its header checksum instead.
COMPRESSION_PREFIXES = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_CONSTRUCTORS = frozenset({("copyreg", "_reconstructor"), ("copyreg", "__newobj__"), ("copy_reg", "_reconstructor")})
_MAX_NODES = 200_000  # objects visited when searching the tree: enough for any estimator, bounded for any file
_SKIP_CHUNK = 1 << 20


class Stub:
    """The inert stand-in for one global of the file; calling it (or `__new__`) makes an inert instance."""

    origin: ClassVar[tuple[str, str]] = ("", "")
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        instance = object.__new__(cls)
        instance.args, instance.kwargs, instance.state, instance.items = args, kwargs, None, []
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, item: Any) -> None:
        self.items.append(item)

    def extend(self, items: Any) -> None:
        self.items.extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items.append((key, value))


@dataclass(frozen=True)
class JoblibArray:
    """A numpy array joblib wrote raw beside the pickle: its shape and dtype, and its values when they are objects."""

    shape: tuple[int, ...]
    dtype: str
    values: list[Any] | None = None


@dataclass
class PickleScan:
    """What a scan found. `root` is the file's object with stand-ins; None, with `error`, when the scan stopped."""

    globals: dict[tuple[str, str], None] = field(default_factory=dict)  # insertion-ordered set
    root: Any = None
    compression: str | None = None
    error: str | None = None

    @property
    def modules(self) -> list[str]:
        """The modules the file imports when loaded, in first-use order."""
        return list(dict.fromkeys(module for module, _ in self.globals))


def compression_of(head: bytes) -> str | None:
    """joblib's compression of a file starting with `head`, or None for a plain pickle."""
    for prefix, name in COMPRESSION_PREFIXES:
        if head.startswith(prefix):
            return name
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return None


def scan_pickle(path: Path, *, joblib: bool) -> PickleScan:
    """Replay the pickle (or joblib file) at `path` with inert stand-ins for its globals; never raises for content."""
    scan = PickleScan()
    with path.open("rb") as raw:
        scan.compression = compression_of(raw.read(6)) if joblib else None
        raw.seek(0)
        if scan.compression == "lz4":
            scan.error = "the file is lz4-compressed, which the standard library cannot read"
            return scan
        try:
            with _decompressed(raw, scan.compression) as stream:
                scan.root = _ScanningUnpickler(stream, scan, joblib=joblib).load()
        except Exception as exc:  # any malformed or unexpected content: report what was seen so far
            scan.root = None
            scan.error = f"{type(exc).__name__}: {exc}"
    return scan


def _decompressed(raw: IO[bytes], compression: str | None) -> IO[bytes]:
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bz2":
        return cast(IO[bytes], bz2.BZ2File(raw, mode="rb"))
    if compression in ("xz", "lzma"):
        return cast(IO[bytes], lzma.LZMAFile(raw, format=lzma.FORMAT_XZ if compression == "xz" else lzma.FORMAT_ALONE))
    if compression == "zlib":
        return io.BufferedReader(_ZlibReader(raw))
    return raw


class _ZlibReader(io.RawIOBase):
    """A zlib stream (joblib's `compress=True` or `("zlib", n)`), decompressed as it is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._inflater = zlib.decompressobj()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._inflater.unconsumed_tail:
                data = self._inflater.decompress(self._inflater.unconsumed_tail, len(view))
            elif self._inflater.eof:
                return 0
            else:
                chunk = self._raw.read(1 << 16)
                if not chunk:
                    return 0
                data = self._inflater.decompress(chunk, len(view))
            if data:
                view[: len(data)] = data
                return len(data)


_BUILD = cast(Callable[[Any], None], pickle._Unpickler.dispatch[pickle.BUILD[0]])


class _ScanningUnpickler(pickle._Unpickler):
    """The pure-Python unpickler with `find_class` answering stand-ins, and joblib's raw arrays read past."""

    stack: list[Any]
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], scan: PickleScan, *, joblib: bool) -> None:
        super().__init__(file)
        self._file = file
        self._scan = scan
        self._joblib = joblib
        self._stubs: dict[tuple[str, str], type[Stub]] = {}

    def find_class(self, module: str, name: str) -> type[Stub]:
        key = (module, name)
        self._scan.globals[key] = None
        stub = self._stubs.get(key)
        if stub is None:
            stub = self._stubs[key] = type(name if name.isidentifier() else "Global", (Stub,), {"origin": key})
        return stub

    def persistent_load(self, pid: Any) -> Any:
        return self.find_class("<persistent id>", "reference")(pid)

    def _load_build(self) -> None:
        _BUILD(self)
        top = self.stack[-1]
        if self._joblib and isinstance(top, Stub) and type(top).origin in _JOBLIB_ARRAY_WRAPPERS:
            self.stack[-1] = self._read_joblib_array(top)

    dispatch[pickle.BUILD[0]] = _load_build

    def _read_joblib_array(self, wrapper: Stub) -> JoblibArray:
        # As joblib's NumpyArrayWrapper.read_array: objects are a nested pickle; anything else raw bytes after an
        # optional padding (a length byte, then that many bytes).
        state = wrapper.state if isinstance(wrapper.state, dict) else {}
        shape = tuple(as_int(size) or 0 for size in state.get("shape", ()))
        code, itemsize, has_objects = _dtype_layout(state.get("dtype"))
        if has_objects:
            nested = _ScanningUnpickler(self._file, self._scan, joblib=True).load()
            return JoblibArray(shape, code, array_values(nested))
        if state.get("numpy_array_alignment_bytes") is not None:
            padding = self._file.read(1)
            self._skip(padding[0] if padding else 0)
        self._skip(math.prod(shape) * itemsize)
        return JoblibArray(shape, code)

    def _skip(self, size: int) -> None:
        while size > 0:
            chunk = self._file.read(min(size, _SKIP_CHUNK))
            if not chunk:
                raise pickle.UnpicklingError("the file ends inside an array's data")
            size -= len(chunk)


def _dtype_layout(dtype: Any) -> tuple[str, int, bool]:
    """A pickled numpy dtype's code ('f8', 'U5', 'O8'), item size in bytes, and whether it holds objects."""
    code = dtype.args[0] if isinstance(dtype, Stub) and dtype.args and isinstance(dtype.args[0], str) else ""
    state = dtype.state if isinstance(dtype, Stub) and isinstance(dtype.state, tuple) else ()
    element_size = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    digits = "".join(character for character in code if character.isdigit())
    itemsize = element_size if element_size > 0 else int(digits or 0)
    if not code or itemsize <= 0:
        raise pickle.UnpicklingError(f"cannot tell the size of dtype {code or dtype!r}")
    return code, itemsize, code.startswith("O") or bool(flags & 1)


def object_class(value: Any) -> tuple[str, str] | None:
    """(module, name) of the class an object of the scan was made from; None for plain values."""
    if not isinstance(value, Stub):
        return None
    origin = type(value).origin
    if origin in _CONSTRUCTORS and value.args and isinstance(value.args[0], type) and issubclass(value.args[0], Stub):
        return value.args[0].origin
    return origin


def object_state(value: Any) -> dict[str, Any]:
    """The attribute dict an object of the scan was given (its `__getstate__`), or {}."""
    if not isinstance(value, Stub):
        return {}
    state = value.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):  # (dict, slots)
        state = state[0]
    return state if isinstance(state, dict) else {}


def array_values(value: Any) -> list[Any] | None:
    """The values of a pickled numpy object array (`feature_names_in_`, string `classes_`); None for others."""
    if isinstance(value, JoblibArray):
        return value.values
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, Stub) and type(value).origin[1] == "_reconstruct" and isinstance(value.state, tuple):
        state = value.state
        if len(state) >= 5 and isinstance(state[4], list):
            return [plain(item) for item in state[4]]
    return None


def plain(value: Any) -> Any:
    """A numpy string scalar as its `str`; anything else unchanged."""
    if isinstance(value, Stub) and type(value).origin == ("numpy", "str_") and value.args:
        return value.args[0]
    return value


def as_int(value: Any) -> int | None:
    """An int, or a pickled numpy integer scalar as one; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Stub) and type(value).origin[1] == "scalar" and len(value.args) == 2:
        dtype, data = value.args
        code = dtype.args[0] if isinstance(dtype, Stub) and dtype.args else ""
        if isinstance(code, str) and code[:1] in ("i", "u") and isinstance(data, bytes):
            return int.from_bytes(data, "little", signed=code.startswith("i"))
    return None


def walk(root: Any) -> Iterator[Any]:
    """Every object reachable from `root` once, depth first, up to a bound."""
    seen: set[int] = set()
    pending = [root]
    while pending and len(seen) < _MAX_NODES:
        value = pending.pop()
        if isinstance(value, (str, bytes, bytearray, int, float, type(None))) or id(value) in seen:
            continue
        seen.add(id(value))
        yield value
        if isinstance(value, Stub):
            pending.extend((value.state, value.items, value.args, value.kwargs))
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending.extend(value)
