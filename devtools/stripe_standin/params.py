"""Request parameters as Stripe reads them: form-encoded `a[b][0]=c` trees, typed on access.

The decoder keeps `metadata` keys as given (localstripe's turns `metadata[0]=x` into a
list). Accessors raise Stripe's errors: unknown parameter, missing parameter, invalid
integer or boolean, value not among the allowed ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from devtools.stripe_standin.errors import StripeError, invalid, missing_param, unknown_param

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_INT = re.compile(r"^-?\d+$")
# maps whose keys are the caller's: never turned into lists
_FREE_FORM = {"metadata"}
_MAX_METADATA_KEYS = 50


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        tokens = [match.group(1), *_PART.findall(match.group(2))] if match else [key]
        node = root
        for i, token in enumerate(tokens):
            if token == "":  # `a[]=x`: the next index
                token = str(len(node))
            if i == len(tokens) - 1:
                node[token] = value
            else:
                child = node.get(token)
                if not isinstance(child, dict):
                    child = {}
                    node[token] = child
                node = child
    return _listify(root, None)


def _listify(value: Any, key: str | None) -> Any:
    if not isinstance(value, dict):
        return value
    out = {k: _listify(v, k) for k, v in value.items()}
    if key not in _FREE_FORM and out and all(k.isdigit() for k in out):
        indexes = sorted(int(k) for k in out)
        if indexes == list(range(len(indexes))):
            return [out[str(i)] for i in indexes]
    return out


def decode_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise invalid("Invalid JSON body.") from exc
        if not isinstance(data, dict):
            raise invalid("Invalid JSON body: expected an object.")
        return data
    from urllib.parse import parse_qsl

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid("Invalid request body encoding: expected UTF-8.") from exc
    return decode_pairs(parse_qsl(text, keep_blank_values=True))


class Params:
    """One request's parameters (or a nested hash of them), read with Stripe's rules."""

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}[{key}]" if self.prefix else key

    def check(self, allowed: Iterable[str]) -> None:
        known = set(allowed) | {"expand"}
        for key in self.data:
            if key not in known:
                raise unknown_param(self.name(key))

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False, max_len: int = 5000) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing_param(self.name(key))
            return None
        if isinstance(value, dict | list):
            raise invalid(
                f"Invalid string: {json.dumps(value)}",
                param=self.name(key),
                code="parameter_invalid_string",
            )
        text = str(value)
        if len(text) > max_len:
            raise invalid(
                f"Invalid string: {text[:20]}...; must be at most {max_len} characters",
                param=self.name(key),
                code="parameter_invalid_string",
            )
        return text

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.data.get(key)
        if value is None or (value == "" and not required):
            if required:
                raise missing_param(self.name(key))
            return None
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INT.match(value))
        ):
            raise invalid(
                f"Invalid integer: {value}", param=self.name(key), code="parameter_invalid_integer"
            )
        number = int(value)
        if minimum is not None and number < minimum:
            if minimum == 1:
                message = f"Invalid positive integer: {number}"
            else:
                message = f"This value must be greater than or equal to {minimum}."
            raise invalid(message, param=self.name(key), code="parameter_invalid_integer")
        return number

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"Invalid boolean: {value}", param=self.name(key))

    def choice(self, key: str, choices: Iterable[str], *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        options = list(choices)
        if value is not None and value not in options:
            listed = (
                ", ".join(options[:-1]) + f", or {options[-1]}" if len(options) > 1 else options[0]
            )
            raise invalid(
                f"Invalid {self.name(key)}: must be one of {listed}", param=self.name(key)
            )
        return value

    def mapping(self, key: str) -> Params | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {self.name(key)} must be a hash", param=self.name(key))
        return Params(value, self.name(key))

    def items(self, key: str) -> list[Any] | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, dict):  # `a[1]=x` without `a[0]`
            value = list(value.values())
        if not isinstance(value, list):
            value = [value]
        return value

    def strings(self, key: str) -> list[str] | None:
        values = self.items(key)
        if values is None:
            return None
        if not all(isinstance(v, str) for v in values):
            raise invalid(f"Invalid array: {self.name(key)} must be strings", param=self.name(key))
        return [str(v) for v in values]

    def expand(self) -> list[str]:
        return self.strings("expand") or []

    def metadata(self) -> dict[str, str] | None:
        """`None` when absent, `{}` to clear (`metadata=`), else the keys to set or unset."""
        if "metadata" not in self.data:
            return None
        value = self.data["metadata"]
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid("Invalid object", param=self.name("metadata"))
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, dict | list):
                raise invalid(
                    f"Invalid value for metadata key {k}: must be a string",
                    param=self.name("metadata"),
                )
            if len(k) > 40:
                raise invalid(
                    f"Metadata key length can't exceed 40 characters: {k}",
                    param=f"{self.name('metadata')}[{k}]",
                )
            text = "" if v is None else str(v)
            if len(text) > 500:
                raise invalid(
                    f"Metadata values can have up to 500 characters, but you passed in a value "
                    f"that is {len(text)} characters. Invalid value: {text[:20]}...",
                    param=f"{self.name('metadata')}[{k}]",
                )
            out[str(k)] = text
        return out


def apply_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's update rule: keys merge, an empty value unsets a key, `metadata=` clears all."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > _MAX_METADATA_KEYS:
        raise StripeError(
            400,
            f"You can only have {_MAX_METADATA_KEYS} metadata keys.",
            param="metadata",
        )
    return merged
