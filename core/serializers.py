"""The base of every JSON request body's serializer.

DRF's fields coerce what they are given: a CharField takes 42 as "42", an
IntegerField takes "42" as 42, a BooleanField takes "yes". A JSON body carries
its own types, and the schema names them; a body whose value is of another
JSON type is refused (400 `invalid_request`, the field named), so that what
the server accepts is what the schema says, no more.

`schema_rules` is what a body must satisfy across its fields, as JSON Schema
(for example `{"anyOf": [{"required": ["email", "password"]}, {"required":
["id_token"]}]}`): core.openapi writes it into the body's schema, and the
serializer's own `validate` enforces it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.validators import RegexValidator
from rest_framework import serializers

# The addresses a request may carry: a plain dot-atom at a DNS name with a
# letters-only top-level label. Narrower than Django's EmailValidator, which
# also applies, so that the schema's pattern is exactly what is accepted.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


class EmailField(serializers.EmailField):
    """An email address in a request body: EMAIL_PATTERN, and Django's check."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(EMAIL_PATTERN, "Enter a valid email address."))
        self.validators.append(_local_part_fits)


def _local_part_fits(value: str) -> None:
    # RFC 5321's 64 characters before the @, as the schema's `format: email` holds.
    if len(value.rpartition("@")[0]) > 64:
        raise serializers.ValidationError("Enter a valid email address.")


_WRONG_TYPE = {
    "string": "Must be a string.",
    "integer": "Must be an integer.",
    "number": "Must be a number.",
    "boolean": "Must be true or false.",
    "object": "Must be an object.",
    "array": "Must be an array.",
}


def _json_type(field: serializers.Field) -> str | None:
    # Order matters: the more specific classes first.
    if isinstance(field, serializers.BooleanField):
        return "boolean"
    if isinstance(field, serializers.IntegerField):
        return "integer"
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return "number"
    if isinstance(field, (serializers.DictField, serializers.JSONField, serializers.Serializer)):
        return "object" if not isinstance(field, serializers.JSONField) else None
    if isinstance(field, (serializers.ListField, serializers.ListSerializer)):
        return "array"
    if isinstance(field, serializers.ChoiceField):
        choices = list(field.choices)
        return "string" if all(isinstance(choice, str) for choice in choices) else None
    if isinstance(field, serializers.CharField):
        return "string"
    return None


def _type_error(field: serializers.Field, value: Any) -> Any:
    """The error for `value` if it is not of the JSON type `field` takes, else None."""
    if value is None:
        return None  # the field's own allow_null decides
    expected = _json_type(field)
    valid = {
        None: True,
        "boolean": isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "string": isinstance(value, str),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[expected]
    if not valid:
        return [_WRONG_TYPE[expected]]
    child = getattr(field, "child", None)
    if isinstance(field, serializers.DictField) and child is not None:
        errors = {key: error for key, item in value.items() if (error := _type_error(child, item))}
        return errors or None
    if isinstance(field, serializers.ListField) and child is not None:
        errors = {index: error for index, item in enumerate(value) if (error := _type_error(child, item))}
        return errors or None
    return None


class JsonBodySerializer(serializers.Serializer):
    schema_rules: ClassVar[dict[str, Any] | None] = None

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {
                name: error
                for name, field in self.fields.items()
                if not field.read_only and name in data and (error := _type_error(field, data[name]))
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class QueryParamsSerializer(serializers.Serializer):
    """The base of every query string's serializer. A parameter that is named
    is given: `?to=` is not a moment, and is refused rather than read as if
    `to` were absent (DRF's default for optional fields of a form)."""

    def to_internal_value(self, data):
        empty = [name for name in self.fields if name in data and data.get(name) == ""]
        if empty:
            raise serializers.ValidationError({name: ["May not be empty."] for name in empty})
        return super().to_internal_value(data)
