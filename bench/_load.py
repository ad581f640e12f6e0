"""Load generator for bench/fullstack.py, run in its own process so it does not share the
server's event loop: `python -m bench._load < config.json` prints one JSON result line.

config: {"url", "scenario", "seconds", "concurrency", "customers": [{"ref", "email",
"password", "token"}], "shared": bool}. Scenarios: get, patch, patch-shared (PATCH with
"shared" forced on), addresses, register, login.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from typing import Any

import aiohttp

from bench import _documents as docs
from service.jsonapi import CONTENT_TYPE


def _request(scenario: str, url: str, customer: dict[str, Any], n: int) -> tuple[str, str, Any]:
    auth = {"Authorization": f"Bearer {customer['token']}"}
    ref = customer["ref"]
    if scenario == "get":
        return "GET", f"{url}/customers/{ref}", (auth, None)
    if scenario == "addresses":
        return "GET", f"{url}/customers/{ref}/addresses", (auth, None)
    if scenario in ("patch", "patch-shared"):
        attrs = {"firstName": f"Load{n}"}
        body = {"data": {"type": "customers", "id": ref, "attributes": attrs}}
        return "PATCH", f"{url}/customers/{ref}", (auth, body)
    if scenario == "login":
        body = docs.login(customer["email"], customer["password"])
        return "POST", f"{url}/access-tokens", ({}, body)
    if scenario == "register":
        body = docs.registration(docs.unique_email("load"), customer["password"])
        return "POST", f"{url}/customers", ({}, body)
    raise ValueError(scenario)


async def run(config: dict[str, Any]) -> dict[str, Any]:
    """Drive one scenario for `seconds` with `concurrency` keep-alive connections."""
    url, scenario = config["url"], config["scenario"]
    customers = config["customers"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = itertools.count()
    concurrency = config["concurrency"]
    # Each connection is one shopper session working through its own customers, as
    # browsers do: a customer's requests follow one another. With "shared": true
    # every connection picks from all customers, so that requests for one customer
    # overlap and the service's optimistic concurrency gets exercised.
    if config.get("shared") or scenario == "patch-shared":
        turns = [(i * 7) % len(customers) for i in range(concurrency)]
        slices = [customers[t:] + customers[:t] for t in turns]
    else:
        slices = [customers[i::concurrency] or customers for i in range(concurrency)]
    deadline = time.perf_counter() + config["seconds"]
    connector = aiohttp.TCPConnector(limit=config["concurrency"])

    async def worker(session: aiohttp.ClientSession, mine: list[dict[str, Any]]) -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            customer = mine[n % len(mine)]
            method, target, (headers, body) = _request(scenario, url, customer, n)
            started = time.perf_counter()
            async with session.request(
                method, target, headers={**headers, "Content-Type": CONTENT_TYPE}, json=body
            ) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - started)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1

    began, cpu = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, slices[i]) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0
        )

    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    return {
        "scenario": scenario,
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rps": ok / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "load_cpu_ms": 1000 * cpu / max(1, len(latencies)),
    }


def main() -> None:
    """Read the config from stdin, print the result."""
    import uvloop

    config = json.load(sys.stdin)
    print(json.dumps(uvloop.run(run(config))))


if __name__ == "__main__":
    main()
