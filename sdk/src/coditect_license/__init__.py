"""The CODITECT license SDK: check out, keep, borrow and give back a seat."""

__version__ = "2.0.0"

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
    KeyNotTrusted,
    KeySetInvalid,
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
    TrustNotConfigured,
)
from coditect_license.fingerprint import fingerprint
from coditect_license.tokens import Claims, KeySet
from coditect_license.transport import RetryPolicy
from coditect_license.trust import SignedKeySet, load_keys_file, verify_signed_keyset

__all__ = [
    "BearerToken",
    "CacheTampered",
    "Claims",
    "ClockSetBack",
    "ConnectionFailed",
    "Credentials",
    "FingerprintNotAllowed",
    "InvalidRequest",
    "KeyNotTrusted",
    "KeySet",
    "KeySetInvalid",
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
    "SignedKeySet",
    "TokenExpired",
    "TokenInvalid",
    "TrustNotConfigured",
    "__version__",
    "fingerprint",
    "load_keys_file",
    "verify_signed_keyset",
]
