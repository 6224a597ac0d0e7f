"""Hypothesis strategies for hostile payloads, and a JSON encoder that can send what the standard
library refuses to write (nesting thousands deep, integers of thousands of digits).

Two families: `json_values()` is anything JSON-like, wrong in every way at once; `for_model()` and
`for_schema()` build payloads that have the right shape (derived from a command's pydantic model or
an endpoint's OpenAPI schema), so the fuzzer gets past validation and into `decide()`, and
`mutated()` breaks them one field at a time.
"""

from __future__ import annotations

import functools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st
from pydantic import BaseModel

from classroom.core import limits

# -- raw JSON ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON text spliced into the payload as it is (deep nesting, huge numbers, NaN)."""

    text: str

    def __repr__(self) -> str:  # short in hypothesis' reports
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''} len={len(self.text)})"


def deep(depth: int, kind: str = "list") -> Raw:
    if kind == "list":
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def encode(value: Any) -> str:
    """JSON text of `value`; Raw parts are spliced in, lone surrogates escaped (\\ud800), NaN and
    Infinity written as the bare tokens Python (not JSON) knows."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def decodable(value: Any, depth: int = 1) -> Any:
    """The same payload with what no JSON parser accepts taken out (lone surrogates become
    U+FFFD, NaN and infinities null, Raw text that does not parse at its depth null): what a
    well-behaved client library could send. The rest (`undecodable`) has a test of its own.
    `depth`: how deep the value sits in the packet (`[name, payload]` is one level)."""
    if isinstance(value, Raw):
        try:
            orjson.loads("[" * depth + value.text + "]" * depth)
        except orjson.JSONDecodeError:
            return Raw("null")
        return value
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {decodable(k): decodable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(decodable(v, depth + 1) for v in value)
    return value


undecodable = st.sampled_from(
    [
        Raw("NaN"),
        Raw("-Infinity"),
        Raw("1e999"),
        Raw("9" * 5001),
        Raw('"\\ud800"'),
        Raw('"a\\udc00b"'),
        deep(1025),
        deep(10_000, "dict"),
        deep(100_000),
        Raw("[1,]"),
        Raw("{'a': 1}"),
        Raw('"\\x41"'),
    ]
)


# -- arbitrary JSON-like values ----------------------------------------------------------------

# The lengths worth trying: every limit in limits.py, one under and one over, and a few more.
_LIMITS = sorted({v for v in vars(limits).values() if isinstance(v, int) and not isinstance(v, bool)})
LENGTHS = sorted({0, 1, 2, 7} | {n + d for n in _LIMITS for d in (-1, 0, 1) if 0 <= n + d <= 70_000})

HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**100)]

lone_surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
any_char = st.characters()  # lone surrogates come from tricky_chars
tricky_chars = st.one_of(
    st.sampled_from(list("\x00\x07\t\n\r\x1b\x7f\x85\u200b\u202e\ufeff\u0301 🎉👍")),
    lone_surrogates,
)
short_text = st.text(st.one_of(any_char, tricky_chars), max_size=12)


@functools.cache
def long_text(max_len: int = 70_000) -> st.SearchStrategy[str]:
    """A text of one of the interesting lengths (at, under, over a limit), built by repetition
    so hypothesis does not have to draw every character."""
    units = st.text(st.one_of(any_char, tricky_chars), min_size=1, max_size=3)
    lengths = st.sampled_from([n for n in LENGTHS if n <= max_len])
    return st.builds(lambda unit, n: (unit * (n // len(unit) + 1))[:n], units, lengths)


texts = st.one_of(
    short_text,
    long_text(),
    st.sampled_from(["", " ", "\n", "\ud800", "a\udfffb", "\x00", "e\u0301", "👍\ufe0f", "❤️", "\ufdfa" * 50]),
)

numbers = st.one_of(
    st.integers(-3, 12),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-0.0, 0.5, 1e-320, 1e308, float("nan"), float("inf"), -math.inf]),
)

raws = st.one_of(
    st.builds(
        deep,
        st.sampled_from([64, 500, 990, 1000, 1020, 1024, 1025, 3000, 10_000, 100_000]),
        st.sampled_from(["list", "dict"]),
    ),
    st.builds(lambda n: Raw("9" * n), st.sampled_from([19, 20, 309, 310, 4300, 4301, 5001, 50_000])),
    st.builds(lambda n: Raw("-" + "9" * n), st.sampled_from([19, 20, 5001])),
    st.sampled_from(
        [
            Raw("NaN"),
            Raw("-Infinity"),
            Raw("1e999"),
            Raw("-0"),
            Raw("0.1e-99999"),
            Raw('"\\ud800"'),
            Raw('"\\udc00x"'),
        ]
    ),
)

leaves = st.one_of(st.none(), st.booleans(), numbers, texts, raws, raws)


@functools.cache
def json_values(fields: tuple[str, ...] = ()) -> st.SearchStrategy[Any]:
    """Any JSON-like value: wrong types, odd numbers, odd strings, nesting (shallow here; deep
    nesting comes as Raw text). Object keys are sometimes one of `fields`."""
    keys = st.one_of(short_text, st.sampled_from(fields)) if fields else short_text
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=12,
    )


# -- payloads shaped like a pydantic model -----------------------------------------------------


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in metadata:
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(m, name, None)
            if value is not None:
                out[name] = value
    return out


def _near(lo: float | None, hi: float | None, integer: bool) -> st.SearchStrategy[Any]:
    """Numbers inside the bounds, on them, and just outside."""
    lo_ = lo if lo is not None else 0
    # Unbounded coordinates still live on the board: mostly stay where the board is.
    hi_ = hi if hi is not None else min(limits.WB_WIDTH, limits.WB_HEIGHT)
    edges = [lo_, hi_, lo_ - 1, hi_ + 1]
    if integer:
        return st.one_of(st.integers(int(lo_), int(hi_)), st.sampled_from([int(e) for e in edges]), numbers)
    return st.one_of(
        st.floats(lo_, hi_),
        st.floats(lo_, hi_),
        st.sampled_from([*edges, lo_ - 1e-9, hi_ + 1e-9]),
        numbers,
    )


IdPools = Mapping[str, list[str]]


@dataclass(frozen=True)
class Ref:
    """The index-th existing id of a kind (`poll`, `page`, ...; `*` for any kind), resolved only
    when the payload is sent: so what hypothesis draws never depends on the server's state."""

    kind: str
    index: int


def resolve(value: Any, ids: IdPools) -> Any:
    """The payload with each Ref replaced by an id that exists now (or a made-up one)."""
    if isinstance(value, Ref):
        pool = list(ids.get(value.kind, ())) or [i for p in ids.values() for i in p]
        return pool[value.index % len(pool)] if pool else "none-yet"
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(resolve(v, ids) for v in value)
    return value


def ids(name: str) -> st.SearchStrategy[Any]:
    """An id field: an existing id of the right kind (`poll_id` -> poll), of another kind, or
    one that does not exist."""
    kind = name.removesuffix("_id")
    index = st.integers(0, 64)
    return st.one_of(
        st.builds(Ref, st.just(kind), index),
        st.builds(Ref, st.just(kind), index),
        st.builds(Ref, st.just("*"), index),
        short_text,
        st.sampled_from(["", "w0", "m-1", "p" + "9" * 30]),
    )


def _for_type(tp: Any, metadata: list[Any], name: str) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(tp)
        return _for_type(base, [*metadata, *extra], name)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_for_type(a, metadata, name) for a in typing.get_args(tp)])
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(typing.get_args(tp)), texts)
    bounds = _bounds(metadata)
    if origin is list:
        (item,) = typing.get_args(tp)
        lo, hi = bounds.get("min_length", 0), bounds.get("max_length", 12)
        sizes = st.one_of(
            st.integers(lo, min(hi, lo + 6)), st.sampled_from(sorted({max(lo - 1, 0), lo, hi, hi + 1}))
        )
        items = _for_type(item, [], name)
        return sizes.flatmap(lambda n: st.lists(items, min_size=n, max_size=n))
    if tp is type(None):
        return st.none()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return _near(bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt")), True)
    if tp is float:
        return _near(bounds.get("ge", bounds.get("gt")), bounds.get("le", bounds.get("lt")), False)
    if tp is str:
        if "pattern" in bounds:
            return st.one_of(st.from_regex(bounds["pattern"], fullmatch=True), short_text)
        if name.endswith("_id"):
            return ids(name)
        return texts
    return json_values()


@functools.cache
def for_model(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """A payload with the model's fields: required ones always, optional ones sometimes, each
    value drawn near its type's limits (so many are valid and reach `decide`)."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        strategy = _for_type(field.annotation, list(field.metadata), name)
        (required if field.is_required() else optional)[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


# -- payloads shaped like an OpenAPI (JSON Schema) body ----------------------------------------


def for_schema(schema: Mapping[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """The same idea for the small JSON Schemas in the OpenAPI document's request bodies."""
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        req = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: for_schema(v, k) for k, v in props.items() if k in req},
            optional={k: for_schema(v, k) for k, v in props.items() if k not in req},
        )
    if kind == "array":
        items = for_schema(schema.get("items", {}), name)
        return st.lists(items, max_size=schema.get("maxItems", 12) + 1)
    if kind == "string":
        n = schema.get("maxLength")
        edge = (
            []
            if n is None
            else [st.builds(lambda u: (u * (n + 1))[: n + 1], st.text(min_size=1, max_size=2))]
        )
        return st.one_of(texts, st.text(max_size=20), *edge, ids(name))
    if kind == "integer":
        return _near(schema.get("minimum"), schema.get("maximum"), True)
    if kind == "boolean":
        return st.booleans()
    return json_values()


# -- mutations ---------------------------------------------------------------------------------

Mutation = Callable[[st.DrawFn, dict[str, Any]], Any]


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], fields: list[str]) -> Any:
    """A valid-shaped payload with zero to two things broken: a field dropped, added, retyped,
    or the whole payload replaced or wrapped."""
    payload = draw(valid)
    if not isinstance(payload, dict):
        return payload
    payload = dict(payload)
    for _ in range(draw(st.integers(0, 2))):
        op = draw(
            st.sampled_from(["drop", "add", "retype", "retype", "hostile", "hostile", "wrap", "replace"])
        )
        if op == "drop" and payload:
            payload.pop(draw(st.sampled_from(sorted(payload))))
        elif op == "add":
            payload[draw(st.one_of(short_text, st.sampled_from([*fields, "id", "role", "__proto__"])))] = (
                draw(json_values())
            )
        elif op in ("retype", "hostile") and (payload or fields):
            # hostile: nesting near and past parsers' limits, numbers past every integer type
            value = json_values() if op == "retype" else st.one_of(raws, raws.map(lambda r: [r]), numbers)
            payload[draw(st.sampled_from(sorted(set(payload) | set(fields))))] = draw(value)
        elif op == "wrap":
            return draw(st.sampled_from([[payload], {"payload": payload}]))
        elif op == "replace":
            return draw(json_values())
    return payload
