"""Outgoing mail: the mailer subscriber, message texts, and the local sink."""
