"""Checking real answers against the OpenAPI document the daemon serves."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from loopdash import __version__
from loopdash.server.api import MAX_HISTORY_PAGE, MAX_LOG_PAGE
from loopdash.server.openapi import build_openapi


def the_document() -> dict[str, Any]:
    return build_openapi(MAX_LOG_PAGE, MAX_HISTORY_PAGE, __version__)


class Contract:
    """Validates a status, headers and JSON body against one operation of the document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def _resolve(self, value: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in value:
            node: Any = self.document
            for part in value["$ref"].removeprefix("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            value = node
        return value

    def schema_validator(self, pointer: str) -> Draft202012Validator:
        """A validator for the schema at ``pointer`` (a JSON pointer into the document)."""
        # The document is the root resource, so the schema's "#/components/..." refs resolve.
        root = dict(self.document)
        root["$ref"] = pointer
        return Draft202012Validator(root, format_checker=FormatChecker())

    def validate_schema(self, name: str, value: Any) -> None:
        self.schema_validator(f"#/components/schemas/{name}").validate(value)

    def response(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The documented response, or an AssertionError naming what is undocumented."""
        operation = self.document["paths"][path][method.lower()]
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {path} answered {status}, which is not documented"
        return self._resolve(responses[str(status)])

    def check(self, path: str, method: str, status: int, headers: Any, body: bytes) -> Any:
        """Validate one real answer; return its decoded JSON (None for a non-JSON answer)."""
        response = self.response(path, method, status)
        for name, spec in response.get("headers", {}).items():
            values = headers.getRawHeaders(name)
            if spec.get("required"):
                assert values, f"{method} {path} {status}: header {name} missing"
            if values:
                Draft202012Validator(spec["schema"]).validate(values[0])
        content = response.get("content", {})
        content_type = (headers.getRawHeaders("content-type") or [""])[0]
        media_type = content_type.split(";")[0].strip()
        assert media_type in content, (path, status, content_type)
        if media_type != "application/json":
            return None
        value = json.loads(body)
        raw = self.document["paths"][path][method.lower()]["responses"][str(status)]
        escaped_path = path.replace("~", "~0").replace("/", "~1")
        base = raw.get("$ref") or f"#/paths/{escaped_path}/{method.lower()}/responses/{status}"
        self.schema_validator(f"{base}/content/application~1json/schema").validate(value)
        return value
