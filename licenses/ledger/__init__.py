"""The seat ledger: who holds which seat of which license, until when.

`get_seat_ledger()` returns the backend that settings.SEAT_LEDGER names.
"""

from licenses.ledger.base import (
    AcquireResult,
    BorrowLimitReached,
    ExpiredLease,
    GroupLimitReached,
    Lease,
    LedgerEvent,
    LedgerUnavailable,
    NoSeatsAvailable,
    QueueFull,
    QueueRequest,
    QueueTicket,
    SeatGroup,
    SeatLedger,
    SessionNotFound,
    TicketNotFound,
    UserMachineLimitReached,
)

__all__ = [
    "AcquireResult",
    "BorrowLimitReached",
    "ExpiredLease",
    "GroupLimitReached",
    "Lease",
    "LedgerEvent",
    "LedgerUnavailable",
    "NoSeatsAvailable",
    "QueueFull",
    "QueueRequest",
    "QueueTicket",
    "SeatGroup",
    "SeatLedger",
    "SessionNotFound",
    "TicketNotFound",
    "UserMachineLimitReached",
    "get_seat_ledger",
]

_ledgers: dict[str, SeatLedger] = {}


def get_seat_ledger(name: str | None = None) -> SeatLedger:
    """The configured backend (one instance per process and backend)."""
    from django.conf import settings

    name = name or settings.SEAT_LEDGER
    if name not in _ledgers:
        if name == "redis":
            from licenses.ledger.borrowed import BorrowedLeaseStore
            from licenses.ledger.redis import RedisSeatLedger

            # Borrowed seats are kept in PostgreSQL too, to survive a loss of Redis.
            _ledgers[name] = RedisSeatLedger.from_settings(borrowed=BorrowedLeaseStore())
        elif name == "database":
            from licenses.ledger.database import DatabaseSeatLedger

            _ledgers[name] = DatabaseSeatLedger()
        else:
            raise ValueError(f"unknown seat ledger {name!r}")
    return _ledgers[name]
