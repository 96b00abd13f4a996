"""Where workpath's time goes in ``bench.versus --profile DIR``: workloads run again under the profilers.

The service and the worker are sampled by py-spy from outside (when it is installed: ``pip install py-spy`` into
``.venv``; it is no dependency of workpath's), the client in this process by cProfile. py-spy samples native
frames too (``--native``), so that time in the garbage collector or in system calls is named as such rather
than charged to whichever Python line was running; that pauses the process at each sample, so the runs are
slower under it than in the table. The raw files stay in DIR (py-spy's collapsed stacks, cProfile's
``.prof``). Printed and returned: each process's top frames by own time, and (py-spy) the workpath functions
with the most time spent in them or below.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import cProfile
import io
import pathlib
import pstats
import re
import shutil
import signal
import sys
from typing import Any

from bench import versus_sides

#: Frames printed per process.
TOP = 12

#: Samples a second py-spy takes.
RATE = 250


async def profile(side: Any, *, plan: dict[versus_sides.Workload, tuple[int, int]], folder: pathlib.Path) -> Any:
    """Each workload of ``plan`` (its count, how many times) on ``side`` (a WorkpathSide) under the profilers."""
    if py_spy() is None:
        print("py-spy is not installed: profiling the client only (pip install py-spy)", file=sys.stderr)
    found = {}
    for workload, (count, times) in plan.items():
        found[workload.value] = await profile_one(side, workload, count=count, times=times, folder=folder / workload)
    return found


async def profile_one(
    side: Any, workload: versus_sides.Workload, *, count: int, times: int, folder: pathlib.Path
) -> dict[str, Any]:
    """Run ``workload`` ``times`` times with the profilers on; print and return the top frames of each process."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = py_spy()
    recorders = {
        name: await record(spy, pid=pid, output=folder / f"{name}.collapsed")
        for name, pid in (side.pids().items() if spy else [])
    }
    await asyncio.sleep(0.5)  # py-spy attaches
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        seconds = [(await side.run(workload, count)).seconds for _ in range(times)]
    finally:
        profiler.disable()
        for process in recorders.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        await asyncio.gather(*(p.wait() for p in recorders.values()))
    profiler.dump_stats(folder / "client.prof")
    tops = {name: top_frames(folder / f"{name}.collapsed") for name in recorders}
    tops["client"] = {"own": top_client(profiler)}
    shown = ", ".join(f"{s:.3f}" for s in seconds)
    print(f"\n=== {workload.value} x {count:,} under the profilers, seconds: {shown}", file=sys.stderr)
    for name, lists in tops.items():
        for kind, frames in lists.items():
            print(f"{name}, {kind} (share of its samples):", file=sys.stderr)
            for frame in frames:
                print(f"  {frame['share'] * 100:5.1f}%  {frame['frame']}", file=sys.stderr)
    return {"seconds": seconds, "folder": str(folder), "top": tops}


def py_spy() -> str | None:
    beside = pathlib.Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def record(spy: str | None, *, pid: int, output: pathlib.Path) -> asyncio.subprocess.Process:
    assert spy is not None
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(output),
        "--native",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


_LINE = re.compile(r":\d+\)$")


def top_frames(path: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """From py-spy's collapsed stacks (line numbers merged): the leaf frames with the most samples (``own``), and
    the workpath frames with the most samples in them or below (``inclusive``)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return {"own": [], "inclusive": []}
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        own[frames[-1]] += int(samples)
        for frame in set(frames):
            if "workpath" in frame:
                inclusive[frame] += int(samples)
    total = sum(own.values()) or 1
    return {
        "own": [{"frame": frame, "share": n / total} for frame, n in own.most_common(TOP)],
        "inclusive": [
            {"frame": frame, "share": n / total}
            for frame, n in inclusive.most_common(TOP + 8)
            if n < 0.98 * total  # not the entry points every sample passes through
        ][:TOP],
    }


def top_client(profiler: cProfile.Profile) -> list[dict[str, Any]]:
    """cProfile's functions with the most own time, as shares of the client's profiled time."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:TOP]
    return [
        {"frame": f"{function} ({pathlib.Path(file).name}:{line})", "share": entry[2] / total}
        for (file, line, function), entry in ranked
    ]
