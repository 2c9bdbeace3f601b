"""Maps domain events to stored rows by stable type name, not Python module path.

The stored `state` is the event's payload as JCS text: exactly the envelope's
`data`, checked by `check_payload` first: this is the one door every domain
event passes before it is hashed and signed. Aggregate ids, versions and timestamps travel in the envelope's own
members, and the class an event re-creates is found through the `TYPE`
registry, so moving a class never rewrites history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import CanInitAggregate
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic

from ledger import crypto
from ledger.domain.base import LedgerAggregate
from ledger.domain.clock import format_time, parse_time
from ledger.domain.payload import check_payload

ENVELOPE_ONLY = ("originator_id", "originator_version", "timestamp", "originator_topic")


@dataclass(frozen=True)
class LedgerStoredEvent(StoredEvent):
    """A stored event with the envelope members eventsourcing does not model."""

    time: str
    event_id: str


class UnknownEventType(MapperDeserialisationError):
    """A stored type name no event class declares."""


class EventTypes:
    """Registry of `TYPE` -> event class (and, for creation events, aggregate class)."""

    def __init__(self) -> None:
        self._events: dict[str, type] = {}
        self._aggregates: dict[type, type] = {}

    def refresh(self) -> None:
        for aggregate in _all_subclasses(LedgerAggregate):
            for value in vars(aggregate).values():
                if isinstance(value, type) and getattr(value, "TYPE", None):
                    self._register(value, aggregate)

    def _register(self, event_cls: type, aggregate: type) -> None:
        name = event_cls.TYPE  # type: ignore[attr-defined]
        known = self._events.get(name)
        if (
            known is not None
            and not issubclass(event_cls, known)
            and not issubclass(known, event_cls)
        ):
            raise TypeError(f"event type {name} declared twice: {known} and {event_cls}")
        self._events[name] = event_cls
        self._aggregates[event_cls] = aggregate

    def event_class(self, name: str) -> type:
        if name not in self._events:
            self.refresh()
        try:
            return self._events[name]
        except KeyError:
            raise UnknownEventType(f"no event class declares type {name!r}") from None

    def aggregate_of(self, event_cls: type) -> type:
        if event_cls not in self._aggregates:
            self.refresh()
        return self._aggregates[event_cls]


def _all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


EVENT_TYPES = EventTypes()


def type_name(event_cls: type) -> str:
    name = getattr(event_cls, "TYPE", None)
    if not name:
        raise TypeError(f"{event_cls.__qualname__} declares no stable TYPE")
    return name


class LedgerMapper(Mapper):
    """Domain event <-> (stable type, JCS payload, envelope time)."""

    def __init__(self) -> None:
        super().__init__(transcoder=None)  # type: ignore[arg-type]

    def to_stored_event(self, domain_event: Any) -> LedgerStoredEvent:
        payload = {k: v for k, v in vars(domain_event).items() if k not in ENVELOPE_ONLY}
        check_payload(payload)
        return LedgerStoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=type_name(type(domain_event)),
            state=crypto.canonical_json(payload),
            time=format_time(domain_event.timestamp),
            event_id=str(uuid4()),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        cls = EVENT_TYPES.event_class(stored_event.topic)
        try:
            state: dict[str, Any] = json.loads(stored_event.state)
            state["timestamp"] = parse_time(stored_event.time)  # type: ignore[attr-defined]
        except (ValueError, AttributeError) as exc:
            raise MapperDeserialisationError(f"bad stored {stored_event.topic}: {exc}") from exc
        originator_id = stored_event.originator_id
        state["originator_id"] = (
            originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        )
        state["originator_version"] = stored_event.originator_version
        if issubclass(cls, CanInitAggregate):
            state["originator_topic"] = get_topic(EVENT_TYPES.aggregate_of(cls))
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
