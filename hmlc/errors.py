"""The one exception hierarchy of hmlc.

Every error a user can cause derives from :class:`HmlcError`. The CLI prints
``str(error)`` on one line and exits with code 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "HmlcError",
    "ConfigError",
    "HierarchyError",
    "PluginError",
    "DataError",
    "CheckpointError",
    "WeightsNotFoundError",
    "shorten",
    "MAX_SHOWN_CHARS",
]

#: Longest user value an error message repeats (longer ones are cut by :func:`shorten`).
MAX_SHOWN_CHARS = 200


def shorten(text: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` (``str()`` of it) cut to ``limit`` characters, with an ellipsis and its full length.

    Every value a user gave that an error message repeats goes through this,
    so that a huge value cannot make a huge error line.
    """
    text = text if isinstance(text, str) else str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class HmlcError(Exception):
    """Base class of errors a user can cause and fix."""


class ConfigError(HmlcError):
    """A configuration file, a ``--set`` override or a preset is invalid."""


class HierarchyError(HmlcError):
    """A label hierarchy is invalid (cycle, self loop, unknown label, ...)."""


class PluginError(HmlcError):
    """A plugin failed to load, registered a duplicate, or a name is unknown."""


class DataError(HmlcError):
    """A data file or folder is missing, unreadable or malformed."""


class CheckpointError(HmlcError):
    """A checkpoint is missing, corrupt or incompatible."""


class WeightsNotFoundError(HmlcError):
    """Pretrained weights were asked for but no local file holds them."""
