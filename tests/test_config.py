"""Settings read from the environment (SPEC §10 and the README's table)."""

from __future__ import annotations

import os

from service.config import Settings


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.workers, s.store) == ("127.0.0.1", 8080, 1, "DE")
    assert (s.argon2_memory_kib, s.argon2_time_cost) == (19456, 2)
    assert s.hash_workers == (os.cpu_count() or 1)
    assert s.mail_batch_seconds == 0.2


def test_hash_workers_and_mail_batch_seconds_are_read_from_the_environment() -> None:
    s = Settings.from_env({"HASH_WORKERS": "3", "MAIL_BATCH_SECONDS": "0.05"})
    assert s.hash_workers == 3
    assert s.mail_batch_seconds == 0.05


def test_an_empty_variable_counts_as_unset() -> None:
    s = Settings.from_env({"HASH_WORKERS": "", "MAIL_BATCH_SECONDS": "", "PORT": ""})
    assert s.hash_workers == (os.cpu_count() or 1)
    assert s.mail_batch_seconds == 0.2
    assert s.port == 8080
