"""Settings read from the environment (SPEC §10 and the README's table)."""

from __future__ import annotations

import os

import pytest

from service.__main__ import parse
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


def test_the_workers_option_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS", "4")
    assert parse(["serve"])[1].workers == 4
    assert parse(["serve", "--workers", "2"])[1].workers == 2


def test_fewer_than_one_worker_is_refused() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["serve", "--workers", "0"])
    assert exit_info.value.code == 2
