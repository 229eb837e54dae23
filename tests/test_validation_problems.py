"""Every ValidationError -> InvalidInput conversion reads pydantic's errors the same way."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from service.errors import validation_problems


class Inner(BaseModel):
    port: int


class Outer(BaseModel):
    name: str
    inner: Inner

    @field_validator("name")
    @classmethod
    def _no_spaces(cls, value: str) -> str:
        if " " in value:
            raise ValueError("no spaces")
        return value


def test_where_is_dotted_and_the_value_error_prefix_is_gone() -> None:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"name": "a b", "inner": {"port": "x"}})
    assert validation_problems(caught.value) == [
        ("name", "no spaces"),
        ("inner.port", "Input should be a valid integer, unable to parse string as an integer"),
    ]


def test_a_problem_with_the_whole_value_has_no_location() -> None:
    with pytest.raises(ValidationError) as caught:
        Inner.model_validate("not a mapping")
    assert validation_problems(caught.value)[0][0] == ""
