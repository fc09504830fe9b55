"""Pydantic's dictionaries with constrained keys and its sets: the JSON schemas it writes for them
and its verdict on JSON texts (test/runtime/schema-property-names.test.ts,
test/runtime/schema-unique-items.test.ts).

A dict whose key type is constrained is written with `propertyNames` (a Literal's enum, a UUID's
format, a maximum length) or with `patternProperties` (a str of a pattern); a set or frozenset as
an array with `uniqueItems`. The tests compile the schema Pydantic wrote, generate values held to
it, and ask Pydantic whether its own parse takes them, as `chat.completions.parse()` would.

Reads {"texts": {model: [json text, ...]}} as JSON on stdin and prints {"pydantic": version,
"schemas": {model: its model_json_schema()}, "valid": {model: [true | "the first error", ...]}}.
Models: counts, stock, owners, short (dicts), sets, held_sets.
"""
import datetime
import json
import sys
import uuid
from typing import Annotated, Literal

import pydantic
from pydantic import BaseModel, StringConstraints, conint, conset


class Counts(BaseModel):
    """A str key of a pattern: patternProperties."""

    counts: dict[Annotated[str, StringConstraints(pattern=r"^[a-z]{1,8}$")], int]


class Stock(BaseModel):
    """Literal keys (propertyNames' enum), and optional keys of them."""

    stock: dict[Literal["apples", "pears", "plums"], int]


class Owners(BaseModel):
    """UUID keys (propertyNames' format)."""

    owners: dict[uuid.UUID, str]


class Short(BaseModel):
    """Keys of at most 3 characters (propertyNames' maxLength), beside a declared property."""

    name: str
    tags: dict[Annotated[str, StringConstraints(max_length=3)], bool]


class Sets(BaseModel):
    """Sets and frozensets: arrays of unique items."""

    tags: set[str]
    colours: set[Literal["red", "green", "blue"]]
    ids: frozenset[int]
    few: conset(int, min_length=1, max_length=3)


class HeldSets(BaseModel):
    """Sets whose items are held to a rule: a format, a pattern, bounds."""

    owners: conset(uuid.UUID, max_length=3)
    days: conset(datetime.date, max_length=3)
    codes: frozenset[Annotated[str, StringConstraints(pattern=r"^[a-c]{2}$")]]
    scores: conset(conint(ge=0, le=5), min_length=2)


DICTS = {"counts": Counts, "stock": Stock, "owners": Owners, "short": Short}
MODELS = {**DICTS, "sets": Sets, "held_sets": HeldSets}


def verdict(model, text):
    try:
        model.model_validate_json(text)
        return True
    except pydantic.ValidationError as exc:
        return str(exc.errors()[0])


def main() -> None:
    job = json.load(sys.stdin)
    json.dump(
        {
            "pydantic": pydantic.VERSION,
            "schemas": {name: m.model_json_schema() for name, m in MODELS.items()},
            "valid": {name: [verdict(MODELS[name], t) for t in texts] for name, texts in job.get("texts", {}).items()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
