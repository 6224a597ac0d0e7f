"""Command payload shapes (pydantic, strict) and the mapping of their errors to protocol codes."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from .errors import CommandError


class Payload(BaseModel):
    """Base of every command payload: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    # NFC so equal-looking names compare equal; control characters (not newline or tab) never
    # reach other clients or the log.
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


# Every line or paragraph break and other whitespace (\s is Unicode-aware: it covers \r, \n, \t,
# \v, \f, \x1c-\x1f, \x85, U+2028, U+2029), and the bidirectional embedding, override and isolate
# controls, which make a name display as something else.
_SPACES = re.compile(r"\s+")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", _BIDI.sub("", text))


def Text(max_len: int, *, one_line: bool = False) -> Any:  # noqa: N802 - reads as a type in annotations
    """Non-empty, trimmed, control-free text of at most `max_len` characters; with `one_line`, every
    run of whitespace (line breaks included) becomes one space.

    The limit holds after normalisation (NFC can make text longer); the cheap bound before it
    only keeps absurd inputs from being normalised at all."""

    def too_long() -> PydanticCustomError:
        return PydanticCustomError(
            "string_too_long", "String should have at most {max_length} characters", {"max_length": max_len}
        )

    def bound(value: Any) -> Any:
        if isinstance(value, str) and len(value) > 4 * max_len:
            raise too_long()  # refused before any work is spent on it
        return value

    def check(value: str) -> str:
        value = _clean(_one_line(value) if one_line else value)
        if len(value) > max_len:
            raise too_long()
        return value

    return Annotated[str, BeforeValidator(bound), AfterValidator(check)]


def Name(max_len: int) -> Any:  # noqa: N802
    """A display name: one line (names are written into line-based exports: chat.txt, WebVTT)."""
    return Text(max_len, one_line=True)


Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


Coord = Annotated[float, AfterValidator(_finite)]

P = TypeVar("P", bound=Payload)

_RANGE_TYPES = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "too_short",
    "too_long",  # a list with too many items: options, choices, points
    "out_of_range",  # raised by our own validators (a point off the board)
}
_LONG_TYPES = {"string_too_long"}


def parse(model: type[P], payload: Any) -> P:
    """Validate `payload` against `model`, or raise a CommandError with the most specific code."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise CommandError("invalid_payload", "the payload must be an object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _to_command_error(exc) from None


def _to_command_error(exc: ValidationError) -> CommandError:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "payload"
    kind = err["type"]
    if kind in _LONG_TYPES:
        code = "too_long"
    elif kind in _RANGE_TYPES:
        code = "out_of_range"
    else:
        code = "invalid_payload"
    message = err["msg"].removeprefix("Value error, ")
    return CommandError(code, f"{where}: {message}")
