"""The OpenAPI document as the app really answers: a 422 is either FastAPI's validation
error or the app's own refusal (a sentence, or the list of problems of a rules check).

FastAPI declares every 422 as its validation error only; the routes that refuse a
well-formed request (bad rules, an unknown category, a date range) answer
`{"detail": "..."}` or `{"detail": {"problems": [...]}}`, which clients (and schemathesis)
would otherwise see as breaking the published schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

REFUSAL = "Refusal"
_REFUSAL_SCHEMA: dict[str, Any] = {
    "title": REFUSAL,
    "type": "object",
    "properties": {"detail": {"anyOf": [
        {"type": "string"},
        {"type": "object", "required": ["problems"],
         "properties": {"problems": {"type": "array", "items": {"type": "string"}}}},
    ]}},
    "required": ["detail"],
}


def _with_refusals(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is None:
                continue
            content = response.setdefault("content", {}).setdefault("application/json", {})
            declared = content.get("schema")
            choices = [declared] if declared else []
            content["schema"] = {"anyOf": [*choices, {"$ref": f"#/components/schemas/{REFUSAL}"}]}
    document.setdefault("components", {}).setdefault("schemas", {})[REFUSAL] = _REFUSAL_SCHEMA
    return document


def install(app: FastAPI) -> None:
    """Serve the corrected document (FastAPI builds it once, on first request)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        document = original()
        return _with_refusals(document) if first else document

    app.openapi = openapi  # type: ignore[method-assign]
