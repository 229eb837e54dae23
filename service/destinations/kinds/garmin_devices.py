"""The device a FIT file for Garmin Connect claims to come from, per discipline.

Garmin Connect computes training effect, load and VO2max only for activities recorded on some
of its own devices; a file from "pelosync on a Peloton" gets none of that. So, like
peloton-to-garmin (``GarminDeviceInfo.cs`` defaults), the FIT uploaded to Garmin names a device
that Garmin does compute them for:

* cycling: Tacx Training App for Windows (manufacturer ``tacx`` 89, product 20533, software
  1.30), the profile that got indoor rides their training effect back (P2G #212, #578);
* rowing: Epix Gen 2 (``garmin``, 3943, software 10.43);
* everything else: Forerunner 945 (``garmin``, 3113, software 19.2).

Each Garmin destination chooses (its config's ``device``, :data:`CHOICES`): ``auto`` (the
default) takes the per-discipline profile above; a profile's name claims that device for every
discipline; ``none`` keeps pelosync's honest device (Garmin then computes none of the above). The
engine renders Garmin's FIT with ``dump_fit(activity, device=device_for(choice, discipline))``;
the other destinations keep the honest default device. Each profile has a fixed serial number
(derived from its name, not copied from anyone's watch) so Garmin Connect sees one device per
profile rather than a new one per workout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType

from service.convert.fit import FitDevice
from service.convert.model import Discipline
from service.errors import InvalidInput


def _serial(profile: str) -> int:
    # uint32z: 0 means "invalid".
    digest = hashlib.sha256(f"pelosync garmin profile {profile}".encode()).digest()
    return int.from_bytes(digest[:4], "little") or 1


#: Profile name (the product's name in the FIT profile) -> device.
PROFILES: Mapping[str, FitDevice] = MappingProxyType(
    {
        "tacx_training_app_win": FitDevice(
            manufacturer="tacx",
            product=20533,
            serial_number=_serial("tacx_training_app_win"),
            software_version=1.30,
        ),
        "epix_gen2": FitDevice(
            manufacturer="garmin",
            product=3943,
            serial_number=_serial("epix_gen2"),
            software_version=10.43,
        ),
        "fr945": FitDevice(
            manufacturer="garmin",
            product=3113,
            serial_number=_serial("fr945"),
            software_version=19.2,
        ),
    }
)

DEFAULT_PROFILE = "fr945"
#: Disciplines that do not use the default profile.
PROFILE_BY_DISCIPLINE: Mapping[Discipline, str] = MappingProxyType(
    {Discipline.CYCLING: "tacx_training_app_win", Discipline.ROWING: "epix_gen2"}
)


def profile_for(discipline: Discipline | str) -> str:
    """The profile name for a discipline (a :class:`Discipline` or its value)."""
    try:
        value = Discipline(discipline)
    except ValueError:
        raise InvalidInput(f"unknown discipline {discipline!r} for a Garmin device") from None
    return PROFILE_BY_DISCIPLINE.get(value, DEFAULT_PROFILE)


def fit_device_for(discipline: Discipline | str) -> FitDevice:
    """The :class:`FitDevice` Garmin's FIT file should claim for ``discipline``."""
    return PROFILES[profile_for(discipline)]


AUTO = "auto"
NONE = "none"
#: What a destination's ``device`` may be, in the order the docs and the form list them.
CHOICES: tuple[str, ...] = (AUTO, *PROFILES, NONE)


def check_choice(choice: str) -> str:
    """``choice`` if it is one of :data:`CHOICES`, else :class:`ValueError` listing them."""
    if choice not in CHOICES:
        raise ValueError(f"{choice!r} is not a device; choose one of {', '.join(CHOICES)}")
    return choice


def device_for(choice: str, discipline: Discipline | str) -> FitDevice | None:
    """The device a destination with ``device: choice`` claims for ``discipline`` (None: the
    writer's honest default). A discipline pelosync does not know gets the default profile."""
    if choice == NONE:
        return None
    if choice != AUTO:
        return PROFILES[check_choice(choice)]
    try:
        return fit_device_for(discipline)
    except InvalidInput:
        return PROFILES[DEFAULT_PROFILE]
