"""The attempt outcomes the API documents are the ones the engine stores."""

from __future__ import annotations

import re

from service.deliveries.models import AttemptResult
from service.deliveries.schemas import AttemptOut


def test_the_documented_outcomes_are_the_stored_ones() -> None:
    description = AttemptOut.model_fields["outcome"].description or ""
    documented = set(re.findall(r"[a-z_]+", description)) - {"or"}
    assert documented == {r.value for r in AttemptResult} - {AttemptResult.LEASE_LOST}
