"""How events declare personal data, and the marker that replaces it once its subject is erased."""

from __future__ import annotations

from typing import Any, Final, Mapping

SUBJECT: Final = "originator_id"
"""Use as a subject attribute when the event's own aggregate is the data subject."""


class Erased:
    """The value of a personal field whose data subject has been erased (its key shredded)."""

    _instance: Erased | None = None

    def __new__(cls) -> Erased:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<erased>"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> tuple[Any, ...]:
        return (Erased, ())

    def __deepcopy__(self, memo: dict[int, Any]) -> Erased:
        return self

    def __copy__(self) -> Erased:
        return self


ERASED: Final = Erased()


def is_erased(value: object) -> bool:
    return value is ERASED


def personal_fields(event_class: type) -> Mapping[str, str]:
    """Field name → name of the attribute that holds that field's data subject id."""
    return getattr(event_class, "personal", {})


def personal_state(aggregate_class: type) -> tuple[str, ...]:
    """Aggregate attributes that are personal data of the aggregate itself (sealed in snapshots)."""
    return getattr(aggregate_class, "personal_state", ())


def readable(value: Any, default: Any = None) -> Any:
    """The value, or ``default`` when it was erased."""
    return default if value is ERASED else value
