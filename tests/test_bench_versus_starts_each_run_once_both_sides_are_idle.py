"""``bench.versus`` starts each measured run once every process under the bench is idle (README, Benchmarks): its
settle waits while a child process works, and returns soon after it stops.

It runs in a process of its own, whose only child is the one it watches (under pytest, the test cluster's
processes may be children too)."""

from __future__ import annotations

import asyncio
import json
import sys

from tests.integration import fleets

#: Seconds the watched child keeps a CPU busy before it sleeps.
BUSY = 0.6

PROBE = f"""
import asyncio, json, subprocess, sys, time
from bench import versus_sides

async def main():
    spin = "import time\\nend = time.monotonic() + {BUSY}\\nwhile time.monotonic() < end: pass\\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        await asyncio.sleep(0.1)
        busy = await versus_sides.settle(within=5.0)
        quiet = await versus_sides.settle(within=5.0)
    finally:
        child.kill()
        child.wait()
    print(json.dumps({{"busy": busy, "quiet": quiet}}))

asyncio.run(main())
"""


async def test_settle_waits_for_a_busy_child_then_returns_once_it_is_quiet() -> None:
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, cwd=fleets.REPO, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(probe.communicate(), 30)
    assert probe.returncode == 0
    waited = json.loads(out)
    assert BUSY - 0.2 <= waited["busy"] <= BUSY + 1.5  # it waited for the child's work, not for ever
    assert waited["quiet"] < 0.5  # already quiet: two windows and it goes
