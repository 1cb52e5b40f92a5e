"""The contract's classes to and from JSON, and to JSON Schema, through msgspec.

Three jobs the library does not do alone, kept generic here so no shape is
written twice:

- :func:`decode` keeps what a server sent beyond a class's fields in its
  ``extra`` (at every depth), then lets msgspec validate the rest.
- :func:`plain` turns a value into JSON-ready builtins with its ``extra``
  merged in (the contract's fields win a clash): how an iteration's pass-through
  fields leave the server.
- :func:`schema_components` names each served class's schema as the document
  does (``StoryAnswer`` is ``Story``), without ``extra`` and msgspec's titles.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

#: The field that holds what the contract does not name; never itself in JSON.
EXTRA = "extra"
#: The suffix of the classes the server answers with, dropped in the schema names.
ANSWER = "Answer"

JSONSchema = dict[str, Any]


class ContractError(ValueError):
    """A JSON value that does not have the shape the contract promises."""


@functools.cache
def _type_info(cls: Any) -> mi.Type:
    return mi.type_info(cls)


def _with_extras(raw: Any, kind: mi.Type) -> Any:
    """``raw`` with, in each object that a Struct with ``extra`` reads, the unknown keys under ``extra``."""
    if isinstance(kind, mi.Metadata):
        return _with_extras(raw, kind.type)
    if isinstance(kind, mi.StructType) and isinstance(raw, dict):
        fields = {f.encode_name: f for f in kind.fields if f.name != EXTRA}
        out = {key: _with_extras(value, fields[key].type) for key, value in raw.items() if key in fields}
        if any(f.name == EXTRA for f in kind.fields):
            out[EXTRA] = {key: value for key, value in raw.items() if key not in fields}
        return out
    if isinstance(kind, mi.UnionType):
        for member in kind.types:
            inner = member.type if isinstance(member, mi.Metadata) else member
            if (isinstance(inner, mi.StructType) and isinstance(raw, dict)) or (
                isinstance(inner, (mi.ListType, mi.VarTupleType)) and isinstance(raw, list)
            ):
                return _with_extras(raw, inner)
        return raw
    if isinstance(kind, (mi.ListType, mi.VarTupleType)) and isinstance(raw, list):
        return [_with_extras(item, kind.item_type) for item in raw]
    return raw


def decode(value: object, cls: type[T]) -> T:
    """``value`` (decoded JSON) as ``cls``, validated; :class:`ContractError` when it breaks the contract."""
    try:
        kind: Any = cls
        return msgspec.convert(_with_extras(value, _type_info(kind)), cls)
    except msgspec.ValidationError as e:
        raise ContractError(f"{cls.__name__}: {e}") from None


def plain(value: Any) -> Any:
    """JSON-ready builtins: each Struct a dict with its ``extra`` first, UNSET fields left out."""
    if isinstance(value, msgspec.Struct):
        out: dict[str, Any] = dict(getattr(value, EXTRA, None) or {})
        for name, encode_name in zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True):
            if name == EXTRA:
                continue
            item = getattr(value, name)
            if item is not msgspec.UNSET:
                out[encode_name] = plain(item)
        return out
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    return value


def plain_object(value: msgspec.Struct) -> dict[str, Any]:
    """:func:`plain` of one Struct: a JSON object."""
    result: dict[str, Any] = plain(value)
    return result


def copied(cls: type[S], source: object, **changed: Any) -> S:
    """A ``cls`` holding ``source``'s attributes of the same names (``extra`` too), but ``changed``.

    How a reading whose fields already bear the contract's names becomes an answer.
    """
    fields = {name: getattr(source, name) for name in cls.__struct_fields__ if hasattr(source, name)}
    return cls(**{**fields, **changed})


def encode(value: object) -> bytes:
    """Compact UTF-8 JSON of builtins and Structs (a Struct's empty ``extra`` is left out)."""
    return msgspec.json.encode(value)


def _schema_name(name: str) -> str:
    return name.removesuffix(ANSWER) or name


def _renamed(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(prefix):
                out[key] = prefix + _schema_name(value.removeprefix(prefix))
            elif key == "mapping" and isinstance(value, dict):
                out[key] = {tag: _renamed({"$ref": ref}, prefix)["$ref"] for tag, ref in value.items()}
            else:
                out[key] = _renamed(value, prefix)
        return out
    if isinstance(node, list):
        return [_renamed(item, prefix) for item in node]
    return node


def schema_components(types: Iterable[Any], prefix: str) -> tuple[list[JSONSchema], dict[str, JSONSchema]]:
    """The schemas of ``types`` (``$ref``s under ``prefix``) and the components they refer to.

    Component names drop the ``Answer`` suffix; msgspec's ``title`` (the class
    name) and the ``extra`` property, which is never sent, are left out.
    """
    schemas, components = msgspec.json.schema_components(tuple(types), ref_template=prefix + "{name}")
    named: dict[str, JSONSchema] = {}
    for name, schema in components.items():
        schema = _renamed(schema, prefix)
        schema.pop("title", None)
        properties = schema.get("properties")
        if isinstance(properties, dict):
            properties.pop(EXTRA, None)
        named[_schema_name(name)] = schema
    return [_renamed(schema, prefix) for schema in schemas], named
