"""The join record's binary form: what the learner needs of a scored event in as few bytes as Redis keeps compactly.

A record is the event's prepared features as values in the order of a *layout* (the feature names, stored once per
model under a 4-byte digest, :func:`layout_digest`), its served prediction, score and probabilities, the model
version and its event time (relative to the start of the slice of time its key names).
Every value is lossless and keeps its type. Features that are all floats (the usual case) take a bit each: set for
a whole number 0-255 (one byte), else 8 bytes; the scorer packs a whole batch of them at once
(:func:`float_blocks`). Other values take a 4-bit tag each that says how they are packed:

* ``None``, ``False``, ``True``: the tag alone;
* a float: 8 bytes, 4 when float32 holds it exactly, a varint when it is a whole number (``28.0``);
* an int: a zig-zag varint; a str: its UTF-8 length and bytes; anything else: orjson, with its length (an
  infinity inside such a value comes back as null).

Binary probabilities that are ``{"False": 1 - score, "True": score}`` (what the scorer serves) take no byte.
River's Agrawal event (9 features) fits in 64 bytes, the largest value Redis keeps in a hash's compact listpack.

>>> names = ("salary", "age", "car")
>>> raw = encode_record(
...     (79154.81875125815, 28.0, 2.0), True, {"False": 1.0 - 0.85, "True": 0.85}, 0.85, 7, 1234, None, names)
>>> len(raw)
30
>>> x, _, probabilities, _, version, ts_delta, _ = decode_record(raw, {layout_digest(names): names})
>>> x, probabilities["True"], (version, ts_delta)
({'salary': 79154.81875125815, 'age': 28.0, 'car': 2.0}, 0.85, (7, 1234))
"""

from __future__ import annotations

import functools
import math
import operator
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from driftline.models.feature_rows import FloatBlock

FORMAT = 1
_NONE, _FALSE, _TRUE, _F64, _F32, _WHOLE, _NEG_WHOLE, _INT, _STR, _JSON = range(10)
#: Tags of the probabilities slot: none, the binary pair derived from the score, any other mapping (orjson).
_NO_PROBA, _BINARY_PROBA, _JSON_PROBA = range(3)
#: How the features are packed: a tag per value, or (all floats) a bit per value.
_TAGGED, _FLOATS = range(2)
_F64_PACK, _F32_PACK = struct.Struct("<d"), struct.Struct("<f")
_LAYOUT = struct.Struct("<I")
_MAX_WHOLE = 2**53
_F32_MAX = 3.4028234663852886e38


def layout_digest(names: Sequence[str]) -> int:
    """The 4-byte id of a layout (feature names in order).

    >>> layout_digest(("a", "b")) == layout_digest(["a", "b"]) != layout_digest(("b", "a"))
    True
    """
    return zlib.crc32("\x00".join(names).encode())


def _uvarint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_uvarint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def _pack(value: Any, out: bytearray) -> int:
    """Append ``value``'s payload to ``out``; returns its tag."""
    if value is None:
        return _NONE
    if value is True or value is False:
        return _TRUE if value else _FALSE
    if isinstance(value, float):
        value = float(value)
        if value.is_integer() and abs(value) < _MAX_WHOLE and math.copysign(1.0, value) > 0:
            _uvarint(int(value), out)
            return _WHOLE
        if value.is_integer() and abs(value) < _MAX_WHOLE:
            if value == 0:  # -0.0 keeps its sign
                out += _F64_PACK.pack(value)
                return _F64
            _uvarint(int(-value), out)
            return _NEG_WHOLE
        if abs(value) <= _F32_MAX and _F32_PACK.unpack(_F32_PACK.pack(value))[0] == value:
            out += _F32_PACK.pack(value)
            return _F32
        out += _F64_PACK.pack(value)
        return _F64
    if isinstance(value, int):
        value = int(value)
        _uvarint(_zigzag(value), out)
        return _INT
    if isinstance(value, str):
        data = str(value).encode()
        _uvarint(len(data), out)
        out += data
        return _STR
    data = orjson.dumps(value)
    _uvarint(len(data), out)
    out += data
    return _JSON


def _unpack(tag: int, raw: bytes, at: int) -> tuple[Any, int]:
    if tag <= _TRUE:
        return (None, False, True)[tag], at
    if tag == _F64:
        return _F64_PACK.unpack_from(raw, at)[0], at + 8
    if tag == _F32:
        return _F32_PACK.unpack_from(raw, at)[0], at + 4
    value, at = _read_uvarint(raw, at)
    if tag == _WHOLE:
        return float(value), at
    if tag == _NEG_WHOLE:
        return -float(value), at
    if tag == _INT:
        return _unzigzag(value), at
    data, at = raw[at : at + value], at + value
    return (data.decode() if tag == _STR else orjson.loads(data)), at


def _is_binary_pair(probabilities: Mapping[str, float], score: Any) -> bool:
    return (
        type(score) is float
        and len(probabilities) == 2
        and probabilities.get("True") == score
        and probabilities.get("False") == 1.0 - score
        and list(probabilities) == ["False", "True"]
    )


def _head(
    prediction: Any,
    probabilities: Mapping[str, float] | None,
    score: Any,
    version: int,
    ts_delta_ms: int,
    challenger: Any,
    digest: int,
    features_mode: int,
) -> bytearray:
    """Everything of a record but its features: format, version, time, layout, then the tags and payloads of the
    probabilities (kind), features (mode), prediction, score and challenger."""
    if probabilities is None:
        proba_tag = _NO_PROBA
    elif _is_binary_pair(probabilities, score):
        proba_tag = _BINARY_PROBA
    else:
        proba_tag = _JSON_PROBA
    out = bytearray((FORMAT,))
    _uvarint(version, out)
    _uvarint(_zigzag(ts_delta_ms), out)
    out += _LAYOUT.pack(digest)
    tags_at = len(out)
    out += b"\x00\x00\x00"
    prediction_tag, score_tag, challenger_tag = _pack(prediction, out), _pack(score, out), _pack(challenger, out)
    out[tags_at] = proba_tag | features_mode << 4
    out[tags_at + 1] = prediction_tag | score_tag << 4
    out[tags_at + 2] = challenger_tag
    if proba_tag == _JSON_PROBA:
        data = orjson.dumps(probabilities)
        _uvarint(len(data), out)
        out += data
    return out


def _is_small_whole(value: float) -> bool:
    return 0.0 <= value < 256.0 and value.is_integer() and math.copysign(1.0, value) > 0


def _floats_block(values: Sequence[float]) -> bytes:
    """Features that are all floats: a bit per feature (set: a whole number 0-255, one byte), then each value."""
    mask, payload = bytearray((len(values) + 7) // 8), bytearray()
    for i, value in enumerate(values):
        if _is_small_whole(value):
            mask[i // 8] |= 1 << (i % 8)
            payload.append(int(value))
        else:
            payload += _F64_PACK.pack(value)
    return bytes(mask + payload)


def float_blocks(matrix: np.ndarray) -> list[bytes]:
    """:func:`_floats_block` of each row of a float matrix, built at once with NumPy (the scorer's batches).

    >>> float_blocks(np.array([[1.0, 0.5], [300.0, -0.0]])) == [_floats_block([1.0, 0.5]), _floats_block([300.0, -0.0])]
    True
    """
    masks, payload, keep = _float_columns(matrix)
    rows = np.concatenate([masks, payload], axis=1)
    kept = np.concatenate([np.ones(masks.shape, dtype=bool), keep], axis=1)
    return _split_rows(rows, kept)


def _float_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a float matrix: the bit mask of its whole numbers 0-255, its 8 bytes per value (a whole number's
    in the first byte), and which of those bytes a record keeps."""
    n, f = matrix.shape
    values = np.ascontiguousarray(matrix, dtype="<f8")
    whole = (values >= 0) & (values < 256) & (values == np.floor(values)) & ~np.signbit(values)
    masks = np.packbits(whole, axis=1, bitorder="little")
    payload = values.view(np.uint8).reshape(n, f, 8).copy()
    payload[..., 0] = np.where(whole, np.where(whole, values, 0).astype(np.uint8), payload[..., 0])
    keep = np.ones((n, f, 8), dtype=bool)
    keep[..., 1:] = ~whole[..., None]
    return masks, payload.reshape(n, f * 8), keep.reshape(n, f * 8)


def _split_rows(rows: np.ndarray, kept: np.ndarray) -> list[bytes]:
    """The bytes of each row of ``rows`` that ``kept`` marks, one bytes object per row."""
    blob = rows[kept].tobytes()
    ends = np.cumsum(kept.sum(axis=1)).tolist()
    return [blob[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def _served_rows(
    predictions: Sequence[Any], probabilities: Sequence[Mapping[str, float] | None], scores: Sequence[Any]
) -> np.ndarray | None:
    """Which rows hold the binary pair of their float score (what :func:`_is_binary_pair` says of each), tested
    per column; None when the columns hold anything but bool predictions, float scores and ``False``/``True``
    dicts (then test each row)."""
    n = len(scores)
    if (
        set(map(type, predictions)) != {bool}
        or set(map(type, scores)) != {float}
        or set(map(type, probabilities)) != {dict}
        or set(map(tuple, probabilities)) != {("False", "True")}  # type: ignore[arg-type]
    ):
        return None
    try:
        negative = np.fromiter(map(operator.itemgetter("False"), probabilities), dtype=np.float64, count=n)
        positive = np.fromiter(map(operator.itemgetter("True"), probabilities), dtype=np.float64, count=n)
    except (TypeError, ValueError):
        return None
    score = np.array(scores, dtype=np.float64)
    return (positive == score) & (negative == 1.0 - score)


def _served_each(
    predictions: Sequence[Any], probabilities: Sequence[Mapping[str, float] | None], scores: Sequence[Any]
) -> np.ndarray:
    return np.fromiter(
        (
            type(p) is bool and type(s) is float and q is not None and _is_binary_pair(q, s)
            for p, q, s in zip(predictions, probabilities, scores, strict=True)
        ),
        dtype=bool,
        count=len(scores),
    )


def _varint_columns(values: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The unsigned varints of ``values`` (each below ``2 ** (7 * width)``) as ``width`` byte columns, and each
    one's length in bytes."""
    shifts = 7 * np.arange(width, dtype=np.int64)
    groups = (values[:, None] >> shifts) & 0x7F
    lengths = 1 + (values[:, None] >= (1 << shifts[1:])).sum(axis=1)
    more = np.arange(width) < (lengths[:, None] - 1)
    return (groups | np.where(more, 0x80, 0)).astype(np.uint8), lengths


#: Widest event-time delta varint packed at once (larger ones are packed one by one: a label TTL of years).
_TS_WIDTH = 5


def encode_batch(
    matrix: np.ndarray,
    predictions: Sequence[Any],
    probabilities: Sequence[Mapping[str, float] | None],
    scores: Sequence[Any],
    version: int,
    ts_deltas_ms: np.ndarray,
    names: Sequence[str],
    digest: int | None = None,
) -> list[bytes]:
    """:func:`encode_record` of each row of a batch whose features are the rows of the float ``matrix`` (no NaN),
    with one ``version`` and no challenger. The rows the scorer serves (a bool prediction, the binary pair of a
    float score that is no whole number) are packed at once with NumPy; the others one by one.

    >>> matrix, names = np.array([[1.0, 0.25], [3.5, 7.0]]), ("a", "b")
    >>> predictions, scores = [False, True], [0.3, 1.0]
    >>> probabilities = [{"False": 1.0 - s, "True": s} for s in scores]
    >>> encode_batch(matrix, predictions, probabilities, scores, 2, np.array([5, 300]), names) == [
    ...     encode_record(list(row), p, q, s, 2, d, None, names)
    ...     for row, p, q, s, d in zip(matrix.tolist(), predictions, probabilities, scores, [5, 300])
    ... ]
    True
    """
    n = matrix.shape[0]
    digest = layout_digest(names) if digest is None else digest
    served = _served_rows(predictions, probabilities, scores)
    fast = served if served is not None else _served_each(predictions, probabilities, scores)
    score = (
        np.array(scores, dtype="<f8")
        if served is not None
        else np.array([s if ok else 0.5 for s, ok in zip(scores, fast.tolist(), strict=True)], dtype="<f8")
    )
    deltas = np.asarray(ts_deltas_ms, dtype=np.int64)
    zigzag = np.where(deltas >= 0, deltas * 2, -deltas * 2 - 1)
    with np.errstate(over="ignore", invalid="ignore"):
        whole = np.isfinite(score) & (score == np.floor(score))
        as_f32 = score.astype("<f4")
        exact_f32 = (np.abs(score) <= _F32_MAX) & (as_f32.astype("<f8") == score)
    fast &= ~whole & (deltas > -(1 << (7 * _TS_WIDTH - 2))) & (zigzag < (1 << (7 * _TS_WIDTH)))
    head = bytearray((FORMAT,))
    _uvarint(version, head)
    ts_bytes, ts_lengths = _varint_columns(np.where(fast, zigzag, 0), _TS_WIDTH)
    score_bytes = score.view(np.uint8).reshape(n, 8).copy()
    score_bytes[exact_f32, :4] = as_f32[exact_f32].view(np.uint8).reshape(-1, 4)
    tags = np.empty((n, 3), dtype=np.uint8)
    tags[:, 0] = _BINARY_PROBA | _FLOATS << 4
    prediction_tags = (
        np.array(predictions, dtype=bool)
        if served is not None
        else np.fromiter((p is True for p in predictions), dtype=bool, count=n)
    )
    tags[:, 1] = np.where(prediction_tags, _TRUE, _FALSE) | np.where(exact_f32, _F32, _F64) << 4
    tags[:, 2] = _NONE
    masks, payload, keep_payload = _float_columns(matrix)
    constant = np.frombuffer(bytes(head), dtype=np.uint8)
    layout = np.frombuffer(_LAYOUT.pack(digest), dtype=np.uint8)
    parts = [
        np.broadcast_to(constant, (n, len(constant))),
        ts_bytes,
        np.broadcast_to(layout, (n, 4)),
        tags,
        score_bytes,
        masks,
        payload,
    ]
    rows = np.concatenate(parts, axis=1)
    kept = np.concatenate(
        [
            np.ones((n, len(constant)), dtype=bool),
            np.arange(_TS_WIDTH) < ts_lengths[:, None],
            np.ones((n, 7), dtype=bool),
            np.arange(8) < np.where(exact_f32, 4, 8)[:, None],
            np.ones(masks.shape, dtype=bool),
            keep_payload,
        ],
        axis=1,
    )
    out = _split_rows(rows, kept)
    if not fast.all():
        rows_list, deltas_list = matrix.tolist(), deltas.tolist()
        for i in np.flatnonzero(~fast).tolist():
            out[i] = encode_record(
                rows_list[i],
                predictions[i],
                probabilities[i],
                scores[i],
                version,
                deltas_list[i],
                None,
                names,
                None,
                digest,
            )
    return out


def encode_record(
    values: Sequence[Any],
    prediction: Any,
    probabilities: Mapping[str, float] | None,
    score: Any,
    version: int,
    ts_delta_ms: int,
    challenger: Any,
    names: Sequence[str],
    floats_block: bytes | None = None,
    digest: int | None = None,
) -> bytes:
    """The binary record of one scored event whose features are ``values`` in the order of ``names`` (or, when
    they are all floats, ``floats_block``: their :func:`float_blocks` row; ``digest``: ``layout_digest(names)``)."""
    if floats_block is None and all(type(v) is float for v in values):
        floats_block = _floats_block(values)
    digest = layout_digest(names) if digest is None else digest
    if floats_block is not None:
        return bytes(
            _head(prediction, probabilities, score, version, ts_delta_ms, challenger, digest, _FLOATS) + floats_block
        )
    out = _head(prediction, probabilities, score, version, ts_delta_ms, challenger, digest, _TAGGED)
    tags_at = len(out)
    out += bytes((len(values) + 1) // 2)
    for i, value in enumerate(values):
        out[tags_at + i // 2] |= _pack(value, out) << (4 * (i % 2))
    return bytes(out)


@functools.lru_cache(maxsize=4096)
def _floats_struct(mask: bytes, count: int) -> struct.Struct:
    """How the ``count`` values of a float block with bit mask ``mask`` are packed: a byte for each bit set (a
    whole number 0-255), else a little-endian double; unpacked in one call.

    >>> _floats_struct(bytes((0b101,)), 3).format
    '<BdB'
    """
    if len(mask) != (count + 7) // 8:
        raise ValueError("join record cut short in its feature mask")
    return struct.Struct("<" + "".join("B" if mask[i // 8] >> (i % 8) & 1 else "d" for i in range(count)))


def record_layout(raw: bytes) -> int:
    """The layout digest a record was written with (ValueError when it is cut short before it).

    >>> record_layout(b"\\x01\\x80")
    Traceback (most recent call last):
    ValueError: join record cut short before its layout
    """
    try:
        at = _read_uvarint(raw, _read_uvarint(raw, 1)[1])[1]
        return _LAYOUT.unpack_from(raw, at)[0]
    except (struct.error, IndexError):
        raise ValueError("join record cut short before its layout") from None


def decode_record(
    raw: bytes, layouts: Mapping[int, Sequence[str]]
) -> tuple[dict[str, Any], Any, dict[str, float] | None, Any, int, int, Any]:
    """``(x, prediction, probabilities, score, version, ts_delta_ms, challenger)`` of a record (KeyError when
    its layout is not in ``layouts``; ValueError when it is no record of this format or cut short)."""
    try:
        return _decode(raw, layouts)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"join record cut short: {exc}") from None


def _decode(
    raw: bytes, layouts: Mapping[int, Sequence[str]]
) -> tuple[dict[str, Any], Any, dict[str, float] | None, Any, int, int, Any]:
    if not raw or raw[0] != FORMAT:
        raise ValueError(f"not a join record of format {FORMAT}")
    version, at = _read_uvarint(raw, 1)
    delta, at = _read_uvarint(raw, at)
    names = layouts[_LAYOUT.unpack_from(raw, at)[0]]
    at += _LAYOUT.size
    proba_tag, features_mode = raw[at] & 0x0F, raw[at] >> 4
    prediction, at2 = _unpack(raw[at + 1] & 0x0F, raw, at + 3)
    score, at2 = _unpack(raw[at + 1] >> 4, raw, at2)
    challenger, at = _unpack(raw[at + 2] & 0x0F, raw, at2)
    probabilities: dict[str, float] | None = None
    if proba_tag == _BINARY_PROBA:
        probabilities = {"False": 1.0 - score, "True": score}
    elif proba_tag == _JSON_PROBA:
        length, at = _read_uvarint(raw, at)
        probabilities = orjson.loads(raw[at : at + length])
        at += length
    if features_mode == _FLOATS:
        width = (len(names) + 7) // 8
        values = _floats_struct(raw[at : at + width], len(names)).unpack_from(raw, at + width)
        x = dict(zip(names, map(float, values), strict=True))
    else:
        features = []
        tags, at = raw[at : at + (len(names) + 1) // 2], at + (len(names) + 1) // 2
        for i in range(len(names)):
            value, at = _unpack(tags[i // 2] >> (4 * (i % 2)) & 0x0F, raw, at)
            features.append(value)
        x = dict(zip(names, features, strict=True))
    return (
        x,
        prediction,
        probabilities,
        score,
        version,
        _unzigzag(delta),
        challenger,
    )


#: Widest varint (version, event-time delta) read at once by :func:`decode_many` (longer ones: one by one).
_VARINT_WIDTH = 8


def _uvarints(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unsigned varint at each position ``at`` of ``buf`` (at most :data:`_VARINT_WIDTH` bytes), where each
    one ends, and which ones fit in that width."""
    value = np.zeros(len(at), dtype=np.int64)
    more = np.ones(len(at), dtype=bool)
    end = at.copy()
    for j in range(_VARINT_WIDTH):
        byte = buf[at + j].astype(np.int64)
        value |= np.where(more, (byte & 0x7F) << (7 * j), 0)
        end += more
        more &= byte >= 0x80
        if not more.any():  # every varint ended: the later bytes add nothing
            break
    return value, end, ~more


def _unaligned(blob: bytes, dtype: str) -> np.ndarray:
    """The values of ``dtype`` that start at each byte of ``blob`` (a read-only view, one a byte: indexing it with
    positions reads a value from each, with no gather of its bytes).

    >>> _unaligned(b"\\x00" + _F64_PACK.pack(0.5) + b"\\x00", "<f8")[[1]].tolist()
    [0.5]
    """
    size = np.dtype(dtype).itemsize
    return np.ndarray((max(0, len(blob) - size + 1),), dtype=dtype, buffer=blob, strides=(1,))


def _gather(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes from each position ``at`` of ``buf``, one row each."""
    return buf[at[..., None] + np.arange(width)]


class DecodedBlock(NamedTuple):
    """Records of one layout read at once (:func:`decode_blocks`): where each one is among the records, their
    features (one row each), served predictions, scores, model versions and event-time deltas."""

    positions: list[int]
    features: FloatBlock
    predictions: list[bool]
    scores: list[float]
    versions: list[int]
    deltas: np.ndarray


def decode_many(raws: Sequence[bytes], layouts: Mapping[int, Sequence[str]]) -> list[Any]:
    """:func:`decode_record` of each record, or the KeyError / ValueError it raises (returned, not raised).

    The records a scorer writes are read at once (:func:`decode_blocks`): the same values, of the same types, as
    :func:`decode_record` (a property test); any other record is decoded alone.

    >>> names = ("a", "b")
    >>> raws = [encode_record([1.0, 0.25], True, {"False": 0.5, "True": 0.5}, 0.5, 3, 9, None, names), b"?"]
    >>> record, error = decode_many(raws, {layout_digest(names): names})
    >>> record
    ({'a': 1.0, 'b': 0.25}, True, {'False': 0.5, 'True': 0.5}, 0.5, 3, 9, None)
    >>> error
    ValueError('not a join record of format 1')
    """
    out: list[Any] = [None] * len(raws)
    blocks, others = decode_blocks(raws, layouts)
    for block in blocks:
        for i, x, prediction, score, version, delta in zip(
            block.positions,
            block.features.rows(),
            block.predictions,
            block.scores,
            block.versions,
            block.deltas.tolist(),
            strict=True,
        ):
            out[i] = (x, prediction, {"False": 1.0 - score, "True": score}, score, version, delta, None)
    for i in others:
        try:
            out[i] = decode_record(raws[i], layouts)
        except (KeyError, ValueError) as exc:
            out[i] = exc
    return out


def decode_blocks(raws: Sequence[bytes], layouts: Mapping[int, Sequence[str]]) -> tuple[list[DecodedBlock], list[int]]:
    """The records a scorer writes (features all floats, a bool prediction, the binary pair of a float score, no
    challenger, a known layout of distinct names), read at once with NumPy over the records joined end to end and
    grouped by layout; and the positions of the other records (to decode alone with :func:`decode_record`).

    >>> names = ("a", "b")
    >>> raws = [encode_record([1.0, 0.25], False, {"False": 0.5, "True": 0.5}, 0.5, 3, -9, None, names), b"?"]
    >>> (block,), others = decode_blocks(raws, {layout_digest(names): names})
    >>> block.positions, block.features.names, block.features.matrix.tolist(), block.deltas.tolist(), others
    ([0], ('a', 'b'), [[1.0, 0.25]], [-9], [1])
    """
    n = len(raws)
    if not n:
        return [], []
    lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # a record cut short is read past its end (then decoded alone): into the next one, or these zeros
    pad = 64 + 9 * max((len(names) for names in layouts.values()), default=0)
    blob = b"".join(raws) + bytes(pad)
    buf = np.frombuffer(blob, dtype=np.uint8)
    doubles = _unaligned(blob, "<f8")
    ok = (lengths > 0) & (buf[starts] == FORMAT)
    versions, at, fits = _uvarints(buf, starts + 1)
    ok &= fits
    zigzags, at, fits = _uvarints(buf, at)
    ok &= fits
    digests = _unaligned(blob, "<u4")[at].astype(np.int64)
    ok &= buf[at + 4] == (_BINARY_PROBA | _FLOATS << 4)
    tags = buf[at + 5]
    prediction_tags, score_tags = tags & 0x0F, tags >> 4
    ok &= ((prediction_tags == _FALSE) | (prediction_tags == _TRUE)) & ((score_tags == _F32) | (score_tags == _F64))
    ok &= buf[at + 6] == _NONE
    at = at + 7
    f32 = score_tags == _F32
    with np.errstate(invalid="ignore"):  # the first 4 bytes of a double read as a float32: maybe a NaN, not kept
        narrow = _unaligned(blob, "<f4")[at].astype(np.float64)
    scores = np.where(f32, narrow, doubles[at])
    at = at + np.where(f32, 4, 8)
    deltas = np.where(zigzags % 2 == 0, zigzags // 2, -(zigzags + 1) // 2)
    blocks = []
    for digest in np.unique(digests[ok]).tolist():
        names = layouts.get(digest)
        rows = np.flatnonzero(ok & (digests == digest))
        if names is None or len(set(names)) != len(names):
            ok[rows] = False  # decode_record raises its KeyError (or builds the dict of repeated names)
            continue
        count, width = len(names), (len(names) + 7) // 8
        masks = _gather(buf, at[rows], width)
        whole = np.unpackbits(masks, axis=1, bitorder="little")[:, :count].astype(bool)
        sizes = np.where(whole, 1, 8)
        offsets = at[rows, None] + width + np.cumsum(sizes, axis=1) - sizes
        complete = at[rows] + width + sizes.sum(axis=1) == starts[rows] + lengths[rows]
        matrix = np.where(whole, buf[offsets], doubles[offsets])
        ok[rows[~complete]] = False
        kept = rows[complete]
        if not len(kept):
            continue
        blocks.append(
            DecodedBlock(
                kept.tolist(),
                FloatBlock(tuple(names), matrix[complete].astype(np.float64, copy=False)),
                (prediction_tags[kept] == _TRUE).tolist(),
                scores[kept].tolist(),
                versions[kept].tolist(),
                deltas[kept],
            )
        )
    return blocks, np.flatnonzero(~ok).tolist()
