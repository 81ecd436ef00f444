"""OpenAPI 3.0 at ``/api``: FastAPI writes 3.1, OGC API Features (and many clients) want 3.0.

The conversion is mechanical: ``anyOf [X, null]`` becomes ``X`` + ``nullable``, ``examples``
lists become ``example``, ``const`` an ``enum``, numeric ``exclusiveMinimum`` the 3.0 boolean
form and ``contentMediaType`` (uploads) ``format: binary``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

OPENAPI_VERSION = "3.0.3"


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        out[key] = value if key in ("example", "default", "enum") else _convert(value)
    for combinator in ("anyOf", "oneOf"):
        options = out.get(combinator)
        if isinstance(options, list) and any(o == {"type": "null"} for o in options):
            rest = [o for o in options if o != {"type": "null"}]
            del out[combinator]
            out["nullable"] = True
            if len(rest) == 1:
                out.update({k: v for k, v in rest[0].items() if k not in out or k == "type"})
                if "$ref" in out:
                    out = {"allOf": [{"$ref": out.pop("$ref")}], **out}
            else:
                out[combinator] = rest
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if types else "string"
    if "examples" in out and isinstance(out["examples"], list) and "in" not in out:
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out[bound]
            out[bound] = True
    if "contentMediaType" in out:
        del out["contentMediaType"]
        out["format"] = "binary"
    return out


def install_openapi30(app: FastAPI) -> None:
    """Make ``app.openapi()`` (served at ``/api``) an OpenAPI 3.0 document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=OPENAPI_VERSION,
                description=app.description,
                routes=app.routes,
            )
            converted: dict[str, Any] = _convert(schema)
            converted["openapi"] = OPENAPI_VERSION
            app.openapi_schema = converted
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
