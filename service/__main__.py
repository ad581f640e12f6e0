"""Command line: `python -m service [serve|replay|verify|migrate|follow]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
    """Start the database once (embedded unless DATABASE_URL), then WORKERS processes."""
    from service import workers

    server, dsn = _database(settings)
    try:
        return workers.serve(settings, dsn)
    finally:
        if server is not None:
            from service.embedded import stop_embedded

            stop_embedded(server)


def parse(argv: list[str]) -> tuple[str, Settings]:
    """The command and the settings: the environment's, with the options over them."""
    parser = argparse.ArgumentParser(prog="python -m service")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "replay", "verify", "migrate", "follow"],
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="service processes sharing the port (serve; default: WORKERS, else 1)",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.workers is not None:
        if args.workers < 1:
            parser.error("--workers must be at least 1")
        settings = dataclasses.replace(settings, workers=args.workers)
    return args.command, settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["follow"]:  # a feed consumer: needs no database, takes its own options
        from service import feed_follow

        return feed_follow.main(argv[1:])
    command, settings = parse(argv)
    setup_logging(settings.log_level)
    if command == "serve":
        return serve(settings)
    from service import maintenance

    server, dsn = _database(settings)
    with contextlib.suppress(ImportError):  # a replay of a big log is CPU-bound here
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(maintenance.main(command, dsn, settings))
    finally:
        if server is not None:
            from service.embedded import stop_embedded

            stop_embedded(server)


if __name__ == "__main__":
    sys.exit(main())
