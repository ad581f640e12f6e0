"""The mails' texts: plain-ASCII mails rendered by hand, everything else by the email package."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from service.mail import messages
from service.mail.sink import links_in

LINK = "http://shop.test/register/confirm?token=" + "ab" * 32


def test_an_ascii_mail_is_rendered_to_bytes_the_email_parser_reads_back() -> None:
    raw = messages.confirmation("shop@example.com", "ada@example.com", LINK, "<1@glue>")
    assert isinstance(raw, bytes)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert (msg["From"], msg["To"]) == ("shop@example.com", "ada@example.com")
    assert msg["Subject"] == "Please confirm your registration"
    assert msg["Message-ID"] == "<1@glue>"
    assert msg["Date"].datetime is not None
    assert msg.get_content_type() == "text/plain"
    assert links_in(msg) == [LINK]


def test_a_rendered_mail_has_crlf_line_ends_only() -> None:
    raw = messages.password_restore("shop@example.com", "ada@example.com", LINK, "<2@glue>")
    assert isinstance(raw, bytes)
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_a_non_ascii_recipient_is_left_to_the_email_package() -> None:
    msg = messages.confirmation("shop@example.com", "jürgen@example.com", LINK, "<3@glue>")
    assert isinstance(msg, EmailMessage)
    assert msg["To"] == "jürgen@example.com"


def test_a_line_longer_than_rfc_5322_allows_is_left_to_the_email_package() -> None:
    long_link = "http://shop.test/?token=" + "a" * 1000
    msg = messages.confirmation("shop@example.com", "ada@example.com", long_link, "<4@glue>")
    assert isinstance(msg, EmailMessage)


def test_a_header_value_with_a_line_break_is_never_rendered_by_hand() -> None:
    with pytest.raises(ValueError):
        messages.confirmation(
            "shop@example.com", "a@example.com\r\nBcc: x@evil.test", LINK, "<5@g>"
        )
