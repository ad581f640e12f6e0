"""The texts of the mails the service sends."""

from __future__ import annotations

from email.message import EmailMessage


def _message(sender: str, to: str, subject: str, body: str, message_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    # Derived from the event: a re-sent mail is recognisably the same message.
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg


def confirmation(sender: str, to: str, link: str, message_id: str) -> EmailMessage:
    """The registration confirmation mail."""
    body = (
        "Welcome!\n\nPlease confirm your registration by opening this link:\n\n"
        f"{link}\n\nIf you did not register, ignore this mail.\n"
    )
    return _message(sender, to, "Please confirm your registration", body, message_id)


def password_restore(sender: str, to: str, link: str, message_id: str) -> EmailMessage:
    """The password restore mail."""
    body = (
        "You asked to reset your password. Open this link within two hours:\n\n"
        f"{link}\n\nIf you did not ask for it, ignore this mail.\n"
    )
    return _message(sender, to, "Reset your password", body, message_id)
