"""The results of ``bench.versus``: medians, ratios against the targets, a table and a JSON document."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Coroutine
from typing import Any

import rich.console
import rich.table

from bench import versus_sides

Workload = versus_sides.Workload


#: workpath's advantage each measure must reach: (label, the figure it is computed from, the target).
TARGETS: dict[str, tuple[str, float]] = {
    "throughput": ("x", 20.0),
    "latencyP99": ("x lower", 5.0),
    "fanout": ("x faster", 20.0),
}


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def side_figures(outcomes: dict[Workload, list[versus_sides.Outcome]], sizes: dict[str, int]) -> dict[str, Any]:
    """The medians over repetitions of one side, and each repetition's figure."""
    throughputs = [sizes["runs"] / o.seconds for o in outcomes[Workload.THROUGHPUT]]
    submits = [sizes["runs"] / o.samples[0] for o in outcomes[Workload.THROUGHPUT]]
    p50s = [quantile(list(o.samples), 0.5) for o in outcomes[Workload.LATENCY]]
    p99s = [quantile(list(o.samples), 0.99) for o in outcomes[Workload.LATENCY]]
    fanouts = [o.seconds for o in outcomes[Workload.FANOUT]]
    return {
        "throughputPerSecond": statistics.median(throughputs),
        "submittedPerSecond": statistics.median(submits),
        "latencyP50Seconds": statistics.median(p50s),
        "latencyP99Seconds": statistics.median(p99s),
        "fanoutSeconds": statistics.median(fanouts),
        "repetitions": {
            "throughputPerSecond": throughputs,
            "submittedPerSecond": submits,
            "latencyP50Seconds": p50s,
            "latencyP99Seconds": p99s,
            "fanoutSeconds": fanouts,
        },
    }


def ratios(workpath: dict[str, Any], celery: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """workpath's advantage on each measure (> 1: workpath better), against its target."""
    values = {
        "throughput": workpath["throughputPerSecond"] / celery["throughputPerSecond"],
        "submitted": workpath["submittedPerSecond"] / celery["submittedPerSecond"],
        "latencyP50": celery["latencyP50Seconds"] / workpath["latencyP50Seconds"],
        "latencyP99": celery["latencyP99Seconds"] / workpath["latencyP99Seconds"],
        "fanout": celery["fanoutSeconds"] / workpath["fanoutSeconds"],
    }
    return {
        name: {"ratio": value, "target": TARGETS[name][1] if name in TARGETS else None}
        | ({"met": value >= TARGETS[name][1]} if name in TARGETS else {})
        for name, value in values.items()
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: machine, versions, sizes, each side's medians and repetitions, the ratios."""
    figures = {name: side_figures(outcomes, raw["sizes"]) for name, outcomes in raw["outcomes"].items()}
    report = {key: value for key, value in raw.items() if key != "outcomes"}
    report["figures"] = figures
    report["latencySamples"] = {
        name: [list(o.samples) for o in outcomes[Workload.LATENCY]] for name, outcomes in raw["outcomes"].items()
    }
    report["ratios"] = ratios(figures["workpath"], figures["Celery"]) if "Celery" in figures else None
    return report


def print_table(report: dict[str, Any]) -> None:
    sizes, figures, found = report["sizes"], report["figures"], report["ratios"]
    celery = figures.get("Celery")
    rest = report.get("restSeconds") or 0
    started = f"each after {rest:g} s idle" if rest else "each started once both sides were idle"
    table = rich.table.Table(title=f"workpath vs Celery (medians of {sizes['repeats']} repetitions, {started})")
    for column in ("workload", "measure", "workpath", "Celery", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("workload", "measure", "target") else "right")
    rows = [
        (f"throughput {sizes['runs']:,}", "runs/s", "throughputPerSecond", _rate, "throughput"),
        ("", "submitted/s", "submittedPerSecond", _rate, "submitted"),
        (f"sequential {sizes['samples']:,}", "p50", "latencyP50Seconds", _ms, "latencyP50"),
        ("", "p99", "latencyP99Seconds", _ms, "latencyP99"),
        (f"fan-out 1x{sizes['children']:,}", "wall time", "fanoutSeconds", _s, "fanout"),
    ]
    for workload, measure, key, shown, ratio_key in rows:
        ratio = found[ratio_key] if found else None
        table.add_row(
            workload,
            measure,
            shown(figures["workpath"][key]),
            shown(celery[key]) if celery else "skipped",
            f"{ratio['ratio']:.1f}x" if ratio else "-",
            _target(ratio_key, ratio),
        )
    table.caption = "ratio: workpath's advantage (throughput: workpath/Celery; latency, fan-out: Celery/workpath)"
    console = rich.console.Console()
    console.print(table)
    machine = report["machine"]
    load = machine["loadAverage1m"]
    console.print(
        f"{machine['cores']} cores, Python {machine['python']}, {machine['platform']}; "
        f"load average {load['start']:.2f} at the start, {load['end']:.2f} at the end; measured in "
        f"{report['seconds']:.0f} s"
    )
    console.print(f"versions: {report['sides']}")
    if report["celerySkipped"]:
        console.print(f"[yellow]Celery skipped: {report['celerySkipped']}[/yellow]")
    else:
        console.print(f"Celery: {report['celery']}")


def _target(name: str, ratio: dict[str, Any] | None) -> str:
    if name not in TARGETS:
        return ""
    label, target = TARGETS[name]
    if ratio is None:
        return f">= {target:g}{label}"
    mark = "[green]met[/green]" if ratio["met"] else "[red]missed[/red]"
    return f">= {target:g}{label} {mark}"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value * 1e3:.3f} ms"


def _s(value: float) -> str:
    return f"{value:.3f} s"


def run_async(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run the bench's coroutine on uvloop when installed, as workpath's commands do."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
