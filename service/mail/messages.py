"""The texts of the mails the service sends."""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.utils import formatdate


def _message(sender: str, to: str, subject: str, body: str, message_id: str) -> Message:
    headers = {
        "From": sender,
        "To": to,
        "Subject": subject,
        # Derived from the event: a re-sent mail is recognisably the same message.
        "Message-ID": message_id,
        "Date": formatdate(usegmt=True),
    }
    if all(v.isascii() for v in (*headers.values(), body)):
        # The plain Message skips the header registry's parsing and refolding, which
        # costs the event loop several times the rest of the mail (EmailMessage).
        msg = Message()
        msg["MIME-Version"] = "1.0"
        for name, value in headers.items():
            msg[name] = value
        msg.set_payload(body, "us-ascii")
        return msg
    rich = EmailMessage()
    for name, value in headers.items():
        rich[name] = value
    rich.set_content(body)
    return rich


def confirmation(sender: str, to: str, link: str, message_id: str) -> Message:
    """The registration confirmation mail."""
    body = (
        "Welcome!\n\nPlease confirm your registration by opening this link:\n\n"
        f"{link}\n\nIf you did not register, ignore this mail.\n"
    )
    return _message(sender, to, "Please confirm your registration", body, message_id)


def password_restore(sender: str, to: str, link: str, message_id: str) -> Message:
    """The password restore mail."""
    body = (
        "You asked to reset your password. Open this link within two hours:\n\n"
        f"{link}\n\nIf you did not ask for it, ignore this mail.\n"
    )
    return _message(sender, to, "Reset your password", body, message_id)
