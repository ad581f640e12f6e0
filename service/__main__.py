"""Command line: `python -m service [serve|replay|verify|migrate]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from service.config import Settings
from service.logs import setup_logging

log = logging.getLogger("glue")


def _database(settings: Settings) -> tuple[object | None, str]:
    if settings.database_url:
        return None, settings.database_url
    from service.embedded import start_embedded

    return start_embedded(settings.data_dir)


def serve(settings: Settings) -> int:
    """Start the database (embedded unless DATABASE_URL), the mail sink (unless SMTP), the API."""
    from aiohttp import web

    from service.app import AppOptions, init_app
    from service.mail.mailer import SmtpTarget
    from service.mail.sink import MailSink

    server, dsn = _database(settings)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def build() -> web.Application:
        options = AppOptions(dsn=dsn)
        if settings.smtp_host is None:
            sink = MailSink(directory=settings.data_dir / "mail")
            port = await sink.start("127.0.0.1", settings.smtp_port)
            log.info("local mail sink on 127.0.0.1:%d writing %s", port, settings.data_dir / "mail")
            options.smtp = SmtpTarget(host="127.0.0.1", port=port)
        app = init_app(settings, options)
        if settings.smtp_host is None:

            async def stop_sink(_: web.Application) -> None:
                await sink.stop()

            app.on_cleanup.append(stop_sink)
        return app

    try:
        web.run_app(
            build(),
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=lambda *_: log.info("serving on http://%s:%d", settings.host, settings.port),
        )
    finally:
        if server is not None:
            from service.embedded import stop_embedded

            stop_embedded(server)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "replay", "verify", "migrate"]
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    setup_logging(settings.log_level)
    if args.command == "serve":
        return serve(settings)
    from service import maintenance

    server, dsn = _database(settings)
    try:
        return asyncio.run(maintenance.main(args.command, dsn, settings))
    finally:
        if server is not None:
            from service.embedded import stop_embedded

            stop_embedded(server)


if __name__ == "__main__":
    sys.exit(main())
