"""The national bench's open-loop load generator: one process, asyncio, keep-alive connections.

`python bench/national_load.py PLAN.json BASE_URL PART PARTS` reads one step a line
on its standard input (`RATE SECONDS`: answers per second, duration) and prints one
JSON line per step: latencies in ms per kind, answers sent, errors. Requests are sent at
their scheduled time whether or not earlier ones came back, and a latency runs from
the scheduled time, so a server that falls behind shows it (no coordinated
omission). The mix, per answer: CERT_SHARE of answers are certification answers, one
per POST, each course answering its challenges in order, one at a time, over many
courses at once; the rest are positioning answers in batches of BATCH; and
LOOKUPS_PER_ANSWER verify lookups (the page or the JSON view of a certificate).
With PARTS generators, each sends RATE / PARTS and answers its PART of the courses.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import sys
import time
from typing import Any

import aiohttp

CERT_SHARE = 0.5
BATCH = 20
LOOKUPS_PER_ANSWER = 0.2
CONNECTIONS = 256
RESULTS = ("ok", "ok", "ok", "ko", "aband")


class Exhausted(Exception):
    """No course has a challenge left to answer."""


class Load:
    """What the platform and the verifiers send: state kept from one step to the next."""

    def __init__(self, plan: dict[str, Any], base: str, part: int, parts: int):
        self.base = base
        self.auth = {"Authorization": f"Bearer {plan['token']}"}
        mine = plan["courses"][part::parts]
        self.idle = collections.deque((c["id"], list(c["challenges"])) for c in mine)
        self.ready = asyncio.Event()
        self.busy = 0
        self.positioned = itertools.cycle(plan["positioned"][part::parts] or plan["positioned"])
        self.challenges = itertools.cycle(plan["challenges"])
        self.codes = itertools.cycle(plan["codes"])
        self.ids = itertools.count()
        self.lookups = itertools.count()
        self.tag = f"{time.time_ns():x}-{part}"

    async def course(self) -> tuple[str, list[str]]:
        """The next course with no answer in flight (waits, late, if every one is busy)."""
        while not self.idle:
            if not self.busy:
                raise Exhausted("every course is answered: give the bench more (--courses)")
            self.ready.clear()
            await self.ready.wait()
        self.busy += 1
        return self.idle.popleft()

    async def certification(self, http: aiohttp.ClientSession) -> int:
        course, left = await self.course()
        body = {"challenge": left[0], "result": RESULTS[len(left) % 5], "time_spent_ms": 42_000}
        try:
            return await post(http, f"{self.base}/api/v1/courses/{course}/answers", body, self.auth)
        finally:
            self.busy -= 1
            if len(left) > 1:
                self.idle.append((course, left[1:]))
                self.ready.set()

    async def positioning(self, http: aiohttp.ClientSession) -> int:
        candidate, at = next(self.positioned), time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        answers = [
            {"candidate": candidate, "answer_id": f"nat-{self.tag}-{next(self.ids)}",
             "challenge": next(self.challenges), "result": "ok", "time_spent_ms": 30_000,
             "answered_at": at}
            for _ in range(BATCH)
        ]  # fmt: skip
        return await post(http, f"{self.base}/api/v1/answers", {"answers": answers}, self.auth)

    async def lookup(self, http: aiohttp.ClientSession) -> int:
        code = next(self.codes)
        path = f"/v/{code}" if next(self.lookups) % 2 else f"/api/v1/certificates/{code}"
        async with http.get(f"{self.base}{path}") as response:
            await response.read()
            return response.status


async def post(http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> int:
    async with http.post(url, json=body, headers=headers) as response:
        await response.read()
        return response.status


def schedule(rate: float, seconds: float) -> list[tuple[float, str]]:
    """(offset in seconds, kind) of every request of a step, evenly spaced per kind."""
    rates = {
        "certification": rate * CERT_SHARE,
        "positioning": rate * (1 - CERT_SHARE) / BATCH,
        "lookup": rate * LOOKUPS_PER_ANSWER,
    }
    out = []
    for kind, per_second in rates.items():
        if per_second > 0:
            out += [(i / per_second, kind) for i in range(int(seconds * per_second))]
    return sorted(out)


async def step(load: Load, http: aiohttp.ClientSession, rate: float, seconds: float) -> dict:
    """Send one step's requests on time; wait for the stragglers (bounded)."""
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    errors: collections.Counter = collections.Counter()
    answers = collections.Counter()
    start = time.perf_counter()

    async def one(due: float, kind: str) -> None:
        try:
            status = await getattr(load, kind)(http)
        except (TimeoutError, aiohttp.ClientError, Exhausted) as exc:
            status = type(exc).__name__
        latencies[kind].append((time.perf_counter() - start - due) * 1000)
        if not isinstance(status, int) or status >= 400:
            errors[f"{kind} {status}"] += 1
        elif kind != "lookup":
            answers[kind] += 1 if kind == "certification" else BATCH

    tasks, late, plan = [], [], schedule(rate, seconds)
    offered = sum(BATCH if kind == "positioning" else 1 for _, kind in plan if kind != "lookup")
    for due, kind in plan:
        delay = start + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late.append(max(0.0, -delay) * 1000)
        tasks.append(asyncio.create_task(one(due, kind)))
    sent = time.perf_counter() - start
    await asyncio.wait(tasks, timeout=30)
    elapsed = time.perf_counter() - start
    return {"rate": rate, "seconds": seconds, "offered": offered, "sent_seconds": sent, "elapsed": elapsed, "latencies": latencies,
            "errors": dict(errors), "answers": dict(answers),
            "courses_left": len(load.idle),
            "late_ms": sorted(late)[int(0.99 * len(late))] if late else 0.0}  # fmt: skip


async def main(plan_file: str, base: str, part: int, parts: int) -> None:
    with open(plan_file, encoding="utf-8") as f:
        load = Load(json.load(f), base, part, parts)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            rate, seconds = (float(x) for x in line.split())
            print(json.dumps(await step(load, http, rate, seconds)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
