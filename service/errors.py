"""The one error catalogue: domain errors and edge failures as Glue error objects."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain import errors as d


@dataclass(frozen=True)
class GlueErrorObject:
    """One entry of a JSON:API `errors` list."""

    status: int
    detail: str
    code: str | None = None

    def to_json(self) -> dict[str, object]:
        """The wire form: code (when there is one), status, detail."""
        body: dict[str, object] = {"status": self.status, "detail": self.detail}
        if self.code is not None:
            body = {"code": self.code, **body}
        return body


class GlueError(Exception):
    """An error answered as a JSON:API error document (HTTP status = the last error's)."""

    def __init__(self, *errors: GlueErrorObject, headers: dict[str, str] | None = None) -> None:
        super().__init__(errors[-1].detail if errors else "error")
        self.errors = list(errors)
        self.headers = headers or {}

    @property
    def status(self) -> int:
        """The HTTP status of the response."""
        return self.errors[-1].status


def error(code: str | None, status: int, detail: str) -> GlueErrorObject:
    """Shorthand for one error object."""
    return GlueErrorObject(status=status, detail=detail, code=code)


INVALID_ACCESS_TOKEN = error("001", 401, "Invalid access token.")
MISSING_ACCESS_TOKEN = error("002", 403, "Missing access token.")
AUTH_FAILED = error("003", 401, "Failed to authenticate user.")
REFRESH_FAILED = error("004", 401, "Failed to refresh token.")
EMAIL_TAKEN = error("400", 422, "Customer with this email already exists.")
CUSTOMER_NOT_FOUND = error("402", 404, "Customer not found.")
ADDRESS_NOT_FOUND = error("404", 404, "Address was not found.")
REFERENCE_MISSING = error("405", 400, "Customer reference is missing.")
PASSWORDS_DIFFER = error(
    "406", 422, "Value in field password should be identical to value in the confirmPassword field."
)
PASSWORD_CHANGE_FAILED = error("407", 400, "Failed to change password.")
WRONG_PASSWORD = error("408", 400, "Invalid password")
SAVE_FAILED = error("410", 400, "Failed to save changes.")
GENDER_INVALID = error("414", 422, "Provided gender is invalid.")
RESTORE_KEY_INVALID = error("415", 422, "Restore password key is not valid.")
PASSWORD_CHARSET = error("420", 400, "The password character set is invalid.")
NEW_PASSWORDS_DIFFER = error(
    "422",
    422,
    "Value in field newPassword should be identical to value in the confirmPassword field.",
)
CONFIRMATION_KEY_INVALID = error(
    "423", 422, "This email confirmation code is invalid or has been already used."
)
UNAUTHORIZED = error("802", 403, "Request is unauthorized.")
TOO_MANY_LOGINS = error(
    "4401",
    429,
    "Too many log in attempts from your address. Please wait 5 minutes before trying again.",
)
PRODUCT_NOT_FOUND = error("4601", 404, "Product not found.")
SUBSCRIPTION_EXISTS = error("4602", 422, "Subscription already exists.")
SUBSCRIPTION_NOT_FOUND = error("4603", 404, "Subscription doesn't exist.")
SUBSCRIPTION_UNAUTHORIZED = error("4606", 403, "Request is unauthorized.")

POST_DATA_INVALID = error(None, 400, "Post data is invalid.")
INVALID_TYPE = error(None, 400, "Invalid type.")
NOT_FOUND = error(None, 404, "Not Found")
PAYLOAD_TOO_LARGE = error(None, 413, "Request body is too large.")
UNSUPPORTED_MEDIA_TYPE = error(None, 415, "Unsupported media type.")
CONFLICT = error(None, 409, "The resource was modified concurrently. Please retry.")
PAGINATION_INVALID = error(None, 400, "Pagination parameters are invalid.")
AS_OF_INVALID = error(None, 400, "asOf must be an ISO-8601 date-time.")
SERVICE_UNAVAILABLE = error(None, 503, "Service temporarily unavailable.")
UNSTORABLE_TEXT = error(None, 400, "The request holds characters that cannot be stored.")
REQUEST_TIMEOUT = error(None, 408, "Request Timeout")
INTERNAL = error(None, 500, "Internal Server Error")

BEARER = {"WWW-Authenticate": "Bearer"}

# Domain error → Glue error; looked up along the exception's MRO, so a
# handler for a base class covers its subclasses.
_DOMAIN: dict[type[d.DomainError], GlueErrorObject] = {
    d.CustomerNotFound: CUSTOMER_NOT_FOUND,
    d.NotOwner: UNAUTHORIZED,
    d.EmailTaken: EMAIL_TAKEN,
    d.PasswordsDiffer: PASSWORDS_DIFFER,
    d.NewPasswordsDiffer: NEW_PASSWORDS_DIFFER,
    d.PasswordCharsetInvalid: PASSWORD_CHARSET,
    d.WrongPassword: WRONG_PASSWORD,
    d.InvalidConfirmationKey: CONFIRMATION_KEY_INVALID,
    d.InvalidRestoreKey: RESTORE_KEY_INVALID,
    d.RestoreKeyExpired: PASSWORD_CHANGE_FAILED,
    d.AuthenticationFailed: AUTH_FAILED,
    d.RefreshFailed: REFRESH_FAILED,
    d.TooManyLoginAttempts: TOO_MANY_LOGINS,
    d.AddressNotFound: ADDRESS_NOT_FOUND,
    d.SubscriptionExists: SUBSCRIPTION_EXISTS,
    d.SubscriptionNotFound: SUBSCRIPTION_NOT_FOUND,
    d.NotSubscriptionOwner: SUBSCRIPTION_UNAUTHORIZED,
    d.ProductNotFound: PRODUCT_NOT_FOUND,
    d.ProductLookupUnavailable: SERVICE_UNAVAILABLE,
    d.ConcurrentModification: CONFLICT,
}


def from_domain(exc: d.DomainError) -> GlueError:
    """The Glue answer for a domain error."""
    for cls in type(exc).__mro__:
        found = _DOMAIN.get(cls)  # type: ignore[call-overload]
        if found is not None:
            headers = BEARER if found.status == 401 else None
            return GlueError(found, headers=headers)
    return GlueError(INTERNAL)


def validation_failed(violations: list[tuple[str, str]]) -> GlueError:
    """422 with one `901` error per violation; a sentinel message maps to its own code."""
    objects = []
    for name, message in violations:
        if message == GENDER_INVALID.detail:
            objects.append(GENDER_INVALID)
        else:
            objects.append(error("901", 422, f"{name} => {message}"))
    return GlueError(*objects)
