"""Peloton strength movements -> Garmin FIT exercises, from a data file the operator can extend.

The built-in table is ``data/strength_exercises.json``; ``PELOSYNC_STRENGTH_EXERCISES_FILE``
names an extra file of the same shape whose entries are merged over it (a movement it lists
replaces the built-in entry; its ``rest`` names are added). Every category and name is checked
against the FIT profile of ``garmin_fit_sdk`` when the table is loaded, so a typo fails loudly
at start-up instead of writing a wrong exercise. A movement the table does not know keeps its
Peloton name and gets the ``unknown`` category: never a guessed exercise.

Movements are looked up by Peloton movement id first (an entry's optional ``ids``), then by
name, compared case-insensitively with punctuation and spacing ignored ("Push-Up" = "push up").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from garmin_fit_sdk import Profile

from service.config import get_settings
from service.errors import InvalidInput

BUILTIN_FILE = Path(__file__).parent / "data" / "strength_exercises.json"
UNKNOWN_CATEGORY = "unknown"

_TYPES: dict[str, dict[int, str]] = Profile["types"]
#: FIT exercise category name -> its number.
CATEGORY_NUMBERS: dict[str, int] = {name: num for num, name in _TYPES["exercise_category"].items()}


def exercise_number(category: str, name: str) -> int | None:
    """The FIT number of exercise ``name`` within ``category``, or None if the profile has none."""
    names = _TYPES.get(f"{category}_exercise_name")
    if names is None:
        return None
    return next((num for num, known in names.items() if known == name), None)


def movement_key(name: str) -> str:
    """How movement names are compared: lower case, letters and digits only, single spaces."""
    return " ".join(re.findall(r"[a-z0-9]+", name.casefold()))


@dataclass(frozen=True, slots=True)
class Exercise:
    """A Garmin exercise, by FIT profile names."""

    category: str
    name: str | None = None


@dataclass(frozen=True)
class ExerciseMap:
    """The merged table: movement name keys and ids -> exercise, and the rest movements."""

    by_name: dict[str, Exercise] = field(default_factory=dict)
    by_id: dict[str, Exercise] = field(default_factory=dict)
    rest: frozenset[str] = frozenset()

    def is_rest(self, name: str | None) -> bool:
        return name is not None and movement_key(name) in self.rest

    def lookup(self, movement_id: str | None, name: str | None) -> Exercise:
        """The exercise for a movement; unknown category when the table has no entry."""
        if movement_id and movement_id in self.by_id:
            return self.by_id[movement_id]
        if name and (found := self.by_name.get(movement_key(name))) is not None:
            return found
        return Exercise(UNKNOWN_CATEGORY)


def _entry(source: str, movement: str, entry: Any) -> tuple[Exercise, list[str]]:
    where = f"{source}: movement {movement!r}"
    if not isinstance(entry, dict):
        raise InvalidInput(f"{where}: expected an object with 'category' and 'name'")
    category, name, ids = entry.get("category"), entry.get("name"), entry.get("ids", [])
    if category not in CATEGORY_NUMBERS or category == UNKNOWN_CATEGORY:
        raise InvalidInput(f"{where}: {category!r} is not a FIT exercise category")
    if not isinstance(name, str) or exercise_number(category, name) is None:
        raise InvalidInput(f"{where}: {name!r} is not a FIT exercise name in {category!r}")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidInput(f"{where}: 'ids' must be a list of Peloton movement ids")
    return Exercise(category, name), ids


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"strength exercises file {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"strength exercises file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("movements", {}), dict):
        raise InvalidInput(f"strength exercises file {path}: expected {{'movements': {{...}}}}")
    rest = data.get("rest", [])
    if not isinstance(rest, list) or not all(isinstance(r, str) for r in rest):
        raise InvalidInput(f"strength exercises file {path}: 'rest' must be a list of names")
    return data


def load_exercise_map(extra: Path | None = None) -> ExerciseMap:
    """The built-in table with ``extra`` (if given) merged over it; raises
    :class:`InvalidInput` naming the file and movement of any entry the FIT profile lacks."""
    by_name: dict[str, Exercise] = {}
    by_id: dict[str, Exercise] = {}
    rest: set[str] = set()
    for path in (BUILTIN_FILE, *((extra,) if extra else ())):
        data = _read(path)
        rest.update(movement_key(r) for r in data.get("rest", []))
        for movement, entry in data.get("movements", {}).items():
            exercise, ids = _entry(str(path), movement, entry)
            by_name[movement_key(movement)] = exercise
            by_id.update(dict.fromkeys(ids, exercise))
    return ExerciseMap(by_name=by_name, by_id=by_id, rest=frozenset(rest))


@cache
def default_exercise_map() -> ExerciseMap:
    """The table this process converts with: built-in plus the configured extra file."""
    return load_exercise_map(get_settings().strength_exercises_file)
