"""The texts of the mails the service sends."""

from __future__ import annotations

import time
from email.message import EmailMessage, Message
from email.utils import formatdate
from functools import lru_cache

# A mail as sent: plain-ASCII mails already rendered to their bytes (CRLF lines), the
# rest as a message object aiosmtplib renders (encoded words, SMTPUTF8).
Mail = Message | bytes

# RFC 5322's limit for a line; shorter ones need no folding to be valid.
_MAX_LINE = 998


@lru_cache(maxsize=2)
def _date(second: int) -> str:
    return formatdate(second, usegmt=True)


def _message(sender: str, to: str, subject: str, body: str, message_id: str) -> Mail:
    headers = {
        "From": sender,
        "To": to,
        "Subject": subject,
        # Derived from the event: a re-sent mail is recognisably the same message.
        "Message-ID": message_id,
        "Date": _date(int(time.time())),
    }
    if body.isascii() and all(v.isascii() and v.isprintable() for v in headers.values()):
        # Rendered here: the email package's generator (folding every header) costs
        # the event loop more than the SMTP conversation that sends the mail.
        lines = [
            "MIME-Version: 1.0",
            *(f"{name}: {value}" for name, value in headers.items()),
            'Content-Type: text/plain; charset="us-ascii"',
            "Content-Transfer-Encoding: 7bit",
            "",
            *body.splitlines(),
        ]
        if all(len(line) <= _MAX_LINE for line in lines):
            return "\r\n".join(lines).encode("ascii") + b"\r\n"
    rich = EmailMessage()
    for name, value in headers.items():
        rich[name] = value
    rich.set_content(body)
    return rich


def confirmation(sender: str, to: str, link: str, message_id: str) -> Mail:
    """The registration confirmation mail."""
    body = (
        "Welcome!\n\nPlease confirm your registration by opening this link:\n\n"
        f"{link}\n\nIf you did not register, ignore this mail.\n"
    )
    return _message(sender, to, "Please confirm your registration", body, message_id)


def password_restore(sender: str, to: str, link: str, message_id: str) -> Mail:
    """The password restore mail."""
    body = (
        "You asked to reset your password. Open this link within two hours:\n\n"
        f"{link}\n\nIf you did not ask for it, ignore this mail.\n"
    )
    return _message(sender, to, "Reset your password", body, message_id)
