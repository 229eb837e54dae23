"""The poll outcomes, triggers and account states the API documents are the ones stored."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from pydantic import BaseModel

from service.accounts.models import AccountStatus, PollOutcome, SyncTrigger
from service.accounts.schemas import AccountOut, SyncRunOut
from service.deliveries.models import DeliveryState
from service.deliveries.schemas import DeliveryOut


def _documented(schema: type[BaseModel], field: str) -> set[str]:
    description = schema.model_fields[field].description or ""
    # The values are the snake_case words; "or", "null", "while"... are prose.
    prose = {"or", "null", "while", "the", "poll", "runs"}
    return set(re.findall(r"[a-z_]+", description)) - prose


@pytest.mark.parametrize(
    ("schema", "field", "enum", "never_stored"),
    [
        (SyncRunOut, "outcome", PollOutcome, {PollOutcome.LEASE_LOST, PollOutcome.GONE}),
        (SyncRunOut, "trigger", SyncTrigger, set()),
        (AccountOut, "status", AccountStatus, set()),
        (DeliveryOut, "state", DeliveryState, set()),
    ],
)
def test_the_documented_values_are_the_stored_ones(
    schema: type[BaseModel], field: str, enum: type[StrEnum], never_stored: set[StrEnum]
) -> None:
    assert _documented(schema, field) == {v.value for v in enum} - never_stored
