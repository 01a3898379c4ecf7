"""Reading an ONNX file's graph signature with the standard library: inputs, outputs, class labels, producer.

An ONNX file is one protobuf `ModelProto`. The few fields needed here are decoded by hand from the wire format, so
a client without the `onnx` package can still describe a model, and a replica can find the class labels that
onnxruntime does not expose. The file is memory-mapped: weights (initializers) are skipped, never copied.
Field numbers are those of onnx/onnx.proto3.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# ModelProto
_IR_VERSION, _PRODUCER_NAME, _PRODUCER_VERSION, _OPSET_IMPORT, _GRAPH = 1, 2, 3, 8, 7
_MODEL_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26})
# GraphProto
_NODE, _INITIALIZER, _INPUT, _OUTPUT = 1, 5, 11, 12
_TENSOR_NAME = 8  # TensorProto.name
# NodeProto, AttributeProto
_NODE_OP_TYPE, _NODE_ATTRIBUTE = 4, 5
_ATTR_NAME, _ATTR_INTS, _ATTR_STRINGS = 1, 8, 9
_CLASS_LABEL_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
# TensorProto.DataType values a replica can feed from JSON numbers.
ELEMENT_TYPES = {1: "float", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 11: "double"}


@dataclass(frozen=True)
class OnnxValue:
    """One graph input or output: its name, and for a tensor its element type and shape (None: unknown dim)."""

    name: str
    kind: str  # "tensor", "sequence", "map" or "other"
    element_type: int | None = None
    shape: tuple[int | str | None, ...] | None = None


@dataclass(frozen=True)
class OnnxGraph:
    """What an ONNX model's graph takes and gives."""

    ir_version: int
    producer: str
    opsets: dict[str, int]
    inputs: tuple[OnnxValue, ...]
    outputs: tuple[OnnxValue, ...]
    class_labels: tuple[int | str, ...] | None = field(default=None)


def read_onnx(path: Path) -> OnnxGraph:
    """Decode the graph signature of the ONNX file at `path`.

    Raises:
        ValueError: the file is not a protobuf ModelProto with a graph.
    """
    with path.open("rb") as file:
        if path.stat().st_size == 0:
            raise ValueError("the file is empty")
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _read_model(memoryview(mapped))
    finally:
        with contextlib.suppress(BufferError):  # a view still held by a traceback: closed when it is collected
            mapped.close()


def looks_like_onnx(path: Path) -> bool:
    """Whether the file parses as a ModelProto with a graph (top-level fields only: cheap on any size)."""
    try:
        read_onnx(path)
    except (ValueError, OSError):
        return False
    return True


def _read_model(data: memoryview) -> OnnxGraph:
    ir_version = 0
    producer: list[str] = []
    opsets: dict[str, int] = {}
    graph: memoryview | None = None
    for number, value in _fields(data):
        if number not in _MODEL_FIELDS:
            raise ValueError(f"field {number} is not part of an ONNX ModelProto")
        if number == _IR_VERSION and isinstance(value, int):
            ir_version = value
        elif number in (_PRODUCER_NAME, _PRODUCER_VERSION) and isinstance(value, memoryview):
            producer.append(_text(value))
        elif number == _OPSET_IMPORT and isinstance(value, memoryview):
            domain, version = "", 0
            for sub, sub_value in _fields(value):
                if sub == 1 and isinstance(sub_value, memoryview):
                    domain = _text(sub_value)
                elif sub == 2 and isinstance(sub_value, int):
                    version = sub_value
            opsets[domain] = version
        elif number == _GRAPH and isinstance(value, memoryview):
            graph = value
    if graph is None or ir_version <= 0:
        raise ValueError("no ir_version or no graph: not an ONNX model")
    return _read_graph(graph, ir_version=ir_version, producer=" ".join(producer), opsets=opsets)


def _read_graph(data: memoryview, *, ir_version: int, producer: str, opsets: dict[str, int]) -> OnnxGraph:
    initializers: set[str] = set()
    inputs: list[OnnxValue] = []
    outputs: list[OnnxValue] = []
    labels: tuple[int | str, ...] | None = None
    for number, value in _fields(data):
        if not isinstance(value, memoryview):
            continue
        if number == _INITIALIZER:
            initializers.update(_text(v) for n, v in _fields(value) if n == _TENSOR_NAME and isinstance(v, memoryview))
        elif number == _INPUT:
            inputs.append(_read_value_info(value))
        elif number == _OUTPUT:
            outputs.append(_read_value_info(value))
        elif number == _NODE and labels is None:
            labels = _class_labels(value)
    # Before IR version 4, initializers were listed among the inputs too; they are not fed by callers.
    fed = tuple(value for value in inputs if value.name not in initializers)
    return OnnxGraph(ir_version, producer, opsets, fed, tuple(outputs), labels)


def _read_value_info(data: memoryview) -> OnnxValue:
    name, kind = "", "other"
    element_type: int | None = None
    shape: tuple[int | str | None, ...] | None = None
    for number, value in _fields(data):
        if number == 1 and isinstance(value, memoryview):
            name = _text(value)
        elif number == 2 and isinstance(value, memoryview):
            for type_field, type_value in _fields(value):
                if type_field == 1 and isinstance(type_value, memoryview):
                    kind = "tensor"
                    element_type, shape = _read_tensor_type(type_value)
                elif type_field == 4:
                    kind = "sequence"
                elif type_field == 5:
                    kind = "map"
    return OnnxValue(name, kind, element_type, shape)


def _read_tensor_type(data: memoryview) -> tuple[int | None, tuple[int | str | None, ...] | None]:
    element_type: int | None = None
    shape: tuple[int | str | None, ...] | None = None
    for number, value in _fields(data):
        if number == 1 and isinstance(value, int):
            element_type = value
        elif number == 2 and isinstance(value, memoryview):
            dims: list[int | str | None] = []
            for dim_field, dim in _fields(value):
                if dim_field != 1 or not isinstance(dim, memoryview):
                    continue
                size: int | str | None = None
                for part, part_value in _fields(dim):
                    if part == 1 and isinstance(part_value, int):
                        size = part_value
                    elif part == 2 and isinstance(part_value, memoryview):
                        size = _text(part_value)
                dims.append(size)
            shape = tuple(dims)
    return element_type, shape


def _class_labels(node: memoryview) -> tuple[int | str, ...] | None:
    """The class labels a classifier node (ai.onnx.ml LinearClassifier, TreeEnsembleClassifier, ZipMap...) carries."""
    for number, value in _fields(node):
        if number != _NODE_ATTRIBUTE or not isinstance(value, memoryview):
            continue
        name = ""
        ints: list[int] = []
        strings: list[str] = []
        for part, part_value in _fields(value):
            if part == _ATTR_NAME and isinstance(part_value, memoryview):
                name = _text(part_value)
            elif part == _ATTR_INTS:
                ints.extend(_ints(part_value))
            elif part == _ATTR_STRINGS and isinstance(part_value, memoryview):
                strings.append(_text(part_value))
        if name in _CLASS_LABEL_ATTRIBUTES:
            labels: list[int] | list[str] = strings if name == "classlabels_strings" else ints
            return tuple(labels) if labels else None
    return None


def _ints(value: int | memoryview) -> list[int]:
    """A repeated int64: one varint, or a packed run of them; two's complement for negatives."""
    raw = [value] if isinstance(value, int) else _packed_varints(value)
    return [number - (1 << 64) if number >= 1 << 63 else number for number in raw]


def _packed_varints(data: memoryview) -> list[int]:
    found, position = [], 0
    while position < len(data):
        number, position = _varint(data, position)
        found.append(number)
    return found


def _text(data: memoryview) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """Each field of one protobuf message: (number, value); a varint or fixed number as an int, bytes as a view."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        value: int | memoryview
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if position + size > end:
                raise ValueError("truncated fixed-size field")
            value = int.from_bytes(data[position : position + size], "little")
            position += size
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("length-delimited field runs past the end")
            value = data[position : position + length]
            position += length
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield number, value
