"""The CODITECT license SDK: check out, keep, borrow and give back a seat."""

__version__ = "1.0.0"

from coditect_license.client import Lease, LicenseClient, LicenseStatus
from coditect_license.credentials import (
    BearerToken,
    Credentials,
    PasswordLogin,
    RefreshTokenLogin,
)
from coditect_license.errors import (
    CacheTampered,
    ClockSetBack,
    ConnectionFailed,
    FingerprintNotAllowed,
    InvalidRequest,
    LicenseError,
    LicenseExpired,
    LicenseNotFound,
    LicenseSuspended,
    NoSeatsAvailable,
    NotAuthenticated,
    NotLicensed,
    PermissionDenied,
    ProtocolError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    SessionNotFound,
    TokenExpired,
    TokenInvalid,
)
from coditect_license.fingerprint import fingerprint
from coditect_license.tokens import Claims, KeySet
from coditect_license.transport import RetryPolicy

__all__ = [
    "BearerToken",
    "CacheTampered",
    "Claims",
    "ClockSetBack",
    "ConnectionFailed",
    "Credentials",
    "FingerprintNotAllowed",
    "InvalidRequest",
    "KeySet",
    "Lease",
    "LicenseClient",
    "LicenseError",
    "LicenseExpired",
    "LicenseNotFound",
    "LicenseStatus",
    "LicenseSuspended",
    "NoSeatsAvailable",
    "NotAuthenticated",
    "NotLicensed",
    "PasswordLogin",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "RefreshTokenLogin",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "SessionNotFound",
    "TokenExpired",
    "TokenInvalid",
    "__version__",
    "fingerprint",
]
