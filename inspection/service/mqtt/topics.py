"""Topic names of the MQTT protocol, version 1 (``docs/mqtt.md``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

TOPIC_ROOT: Final = "weldinspect/v1"
STATION_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A station id: 1-64 letters, digits, ``.``, ``_``, ``-`` (never ``/``, ``+``, ``#``), first alphanumeric."""
ONLINE: Final = "online"
OFFLINE: Final = "offline"


def check_station(station: str) -> str:
    """``station`` when it is a valid station id; ValueError naming the rule otherwise."""
    if not STATION_PATTERN.fullmatch(station):
        msg = (
            f"station id {station!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '/', '+' or '#': it is part of the MQTT topics)"
        )
        raise ValueError(msg)
    return station


@dataclass(frozen=True)
class StationTopics:
    """The four topics of one station."""

    station: str

    def __post_init__(self) -> None:
        check_station(self.station)

    @property
    def base(self) -> str:
        return f"{TOPIC_ROOT}/{self.station}"

    @property
    def image(self) -> str:
        """Station -> service: the raw image bytes, metadata in user properties."""
        return f"{self.base}/image"

    @property
    def result(self) -> str:
        """Service -> station: the inspection JSON (QoS 1)."""
        return f"{self.base}/result"

    @property
    def error(self) -> str:
        """Service -> station: why a message was rejected, naming the message."""
        return f"{self.base}/error"

    @property
    def status(self) -> str:
        """Service -> anyone: retained ``online`` / ``offline`` (the last will)."""
        return f"{self.base}/status"
