"""Domain errors. They say what went wrong; service/errors.py says how the API answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every rule the domain refuses."""


class CustomerNotFound(DomainError):
    """No such (living) customer."""


class NotOwner(DomainError):
    """The caller may not act on this resource."""


class EmailTaken(DomainError):
    """Another customer holds the email."""


class PasswordsDiffer(DomainError):
    """password ≠ confirmPassword."""


class NewPasswordsDiffer(DomainError):
    """newPassword ≠ confirmPassword."""


class PasswordCharsetInvalid(DomainError):
    """The password holds non-printable characters."""


class WrongPassword(DomainError):
    """The current password does not match."""


class InvalidConfirmationKey(DomainError):
    """Unknown or already used registration key."""


class InvalidRestoreKey(DomainError):
    """Unknown or already used restore key."""


class RestoreKeyExpired(DomainError):
    """The restore key's two hours are over."""


class AuthenticationFailed(DomainError):
    """Wrong credentials, unknown or unconfirmed account (deliberately one answer)."""


class RefreshFailed(DomainError):
    """Unknown, expired or revoked refresh token."""


class TooManyLoginAttempts(DomainError):
    """The login blocker is engaged for this username or address."""


class AddressNotFound(DomainError):
    """No such address of this customer."""


class SubscriptionExists(DomainError):
    """Same email and SKU are already subscribed."""


class SubscriptionNotFound(DomainError):
    """No subscription with this key."""


class NotSubscriptionOwner(NotOwner):
    """Another customer's availability subscriptions (Glue answers 4606, not 802)."""


class ProductNotFound(DomainError):
    """The product lookup does not know the SKU."""


class ProductLookupUnavailable(DomainError):
    """The product lookup could not be reached."""


class ConcurrentModification(DomainError):
    """The stream kept moving under the command after its retries."""
