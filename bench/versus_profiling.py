"""Where workpath's time goes in ``bench.versus --profile DIR``: one throughput run under the profilers.

The service and the worker are sampled by py-spy from outside (when it is installed: ``pip install py-spy`` into
``.venv``; it is no dependency of workpath's), the client in this process by cProfile. The raw files stay in DIR
(py-spy's collapsed stacks, cProfile's ``.prof``); the top frames by own time are printed and returned.
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


async def profile(side: Any, *, count: int, folder: pathlib.Path) -> dict[str, Any]:
    """Run the throughput workload once on ``side`` (a WorkpathSide) with the profilers on; the top frames."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = py_spy()
    if spy is None:
        print("py-spy is not installed: profiling the client only (pip install py-spy)", file=sys.stderr)
    recorders = {
        name: await record(spy, pid=pid, output=folder / f"{name}.collapsed")
        for name, pid in (side.pids().items() if spy else [])
    }
    await asyncio.sleep(0.5)  # py-spy attaches
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        outcome = await side.run(versus_sides.Workload.THROUGHPUT, count)
    finally:
        profiler.disable()
        for process in recorders.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        await asyncio.gather(*(p.wait() for p in recorders.values()))
    profiler.dump_stats(folder / "client.prof")
    tops = {name: top_frames(folder / f"{name}.collapsed") for name in recorders}
    tops["client"] = top_client(profiler)
    for name, frames in tops.items():
        print(f"\n{name}: top frames by own time (share of its samples)", file=sys.stderr)
        for frame in frames:
            print(f"  {frame['share'] * 100:5.1f}%  {frame['frame']}", file=sys.stderr)
    return {"throughputPerSecond": count / outcome.seconds, "folder": str(folder), "top": tops}


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
        "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


_LINE = re.compile(r":\d+\)$")


def top_frames(path: pathlib.Path) -> list[dict[str, Any]]:
    """The leaf frames of py-spy's collapsed stacks with the most samples (line numbers merged)."""
    own: collections.Counter[str] = collections.Counter()
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        own[_LINE.sub(")", leaf)] += int(samples)
    total = sum(own.values()) or 1
    return [{"frame": frame, "share": n / total} for frame, n in own.most_common(TOP)]


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
