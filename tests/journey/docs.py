"""The webhook receivers of docs/destinations.md, taken from the page itself, so the journey
suite runs exactly what a reader copies (a change to the page is a change to the test)."""

from __future__ import annotations

import re
from pathlib import Path

DESTINATIONS_MD = Path(__file__).resolve().parents[2] / "docs" / "destinations.md"

#: The lead-in of each receiver on the page (bold, before its code block).
PYTHON_STANDARDWEBHOOKS = "**Python, with the `standardwebhooks` package**"
PYTHON_STDLIB = "**Python, standard library only:**"
NODE_EXPRESS = "**Node.js, with the `standardwebhooks` npm package**"
NODE_STDLIB = "**Node.js, standard library only:**"


def snippet(lead_in: str, language: str) -> str:
    """The first ``language`` code block after the paragraph starting with ``lead_in``."""
    text = DESTINATIONS_MD.read_text()
    start = text.find(lead_in)
    assert start >= 0, f"{DESTINATIONS_MD.name} no longer has {lead_in!r}"
    block = re.compile(rf"^```{language}\n(.*?)^```$", re.S | re.M).search(text, start)
    assert block is not None, f"no {language} block after {lead_in!r} in {DESTINATIONS_MD.name}"
    return block.group(1)
