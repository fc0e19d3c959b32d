"""What a person reads after a run: the verdict line, op counts, a timeline page.

The timeline is one self-contained HTML file with an inline SVG: a row per
node coloured by its role over time (leader, follower, candidate, down,
paused, silent), the faults as shaded bands, and every op's latency on a log
scale (green ok, grey failed, red for unknown outcome, drawn at the time the
client gave up).
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from jepsen.history import OK, UNKNOWN, Op

ROLE_COLOURS = {"leader": "#2b8a3e", "follower": "#a5d8ff", "candidate": "#ffd43b",
                "pre_candidate": "#ffec99", "learner": "#d0bfff", "down": "#343a40",
                "paused": "#e8590c", "silent": "#adb5bd"}
FAULT_COLOURS = {"kill": "#e03131", "pause": "#e8590c", "partition": "#7048e8",
                 "delay": "#1c7ed6", "drop": "#1098ad", "transfer": "#2f9e44",
                 "member": "#c2255c"}


def op_counts(ops: list[Op]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter] = {}
    for op in ops:
        counts.setdefault(op.kind, Counter())[op.status] += 1
    total = Counter(op.status for op in ops)
    return {"total": dict(total), **{k: dict(v) for k, v in sorted(counts.items())}}


def verdict_line(result: dict[str, Any], problems: list[str]) -> str:
    """One line: the verdict, the run's size, and the workloads' problems (short)."""
    ops = result["ops"]["total"]
    head = (f"respkv-jepsen {result['verdict']}: seed={result['seed']} nodes={result['nodes']} "
            f"duration={result['duration']}s ops={sum(ops.values())} "
            f"(ok {ops.get(OK, 0)}, unknown {ops.get(UNKNOWN, 0)}) "
            f"faults={len(result['faults'])} ({result['fault_seconds']}s)")
    problems = list(problems)
    if not result.get("recovered", True):
        problems.append("cluster did not recover")
    return head + (" -- " + "; ".join(problems) if problems else "")


def timeline(path: Path, result: dict[str, Any], ops: list[Op], samples: list[dict],
             faults: list) -> None:
    width, left, row = 1400, 70, 22
    nodes = sorted({s["node"] for s in samples}) or ["n1"]
    end = max([s["t"] for s in samples] + [o.complete for o in ops if o.status != UNKNOWN]
              + [1])
    scale = (width - left - 10) / end

    def x(t: int) -> float:
        return left + t * scale

    parts = []
    top = 30
    # roles
    by_node: dict[str, list[dict]] = {}
    for s in samples:
        by_node.setdefault(s["node"], []).append(s)
    for i, node in enumerate(nodes):
        y = top + i * row
        parts.append(f'<text x="5" y="{y + 15}" font-size="12">{node}</text>')
        series = []
        for sample in by_node.get(node, []):  # one rect per run of equal samples
            if not series or (sample["role"], sample["term"]) != (series[-1]["role"],
                                                                   series[-1]["term"]):
                series.append(sample)
        for a, b in zip(series, [*series[1:], None], strict=True):
            t1 = b["t"] if b else end
            colour = ROLE_COLOURS.get(a["role"], "#fff")
            title = html.escape(f"{node} {a['role']} term {a['term']} leader {a['leader']}")
            span = max(0.5, x(t1) - x(a["t"]))
            parts.append(f'<rect x="{x(a["t"]):.1f}" y="{y}" width="{span:.1f}"'
                         f' height="{row - 4}" fill="{colour}"><title>{title}</title></rect>')
    faults_top = top + len(nodes) * row + 6
    parts.append(f'<text x="5" y="{faults_top + 14}" font-size="12">faults</text>')
    for event in faults:
        family = event.kind.split("-")[0]
        colour = FAULT_COLOURS.get(family, "#868e96")
        end_t = event.end or end
        title = html.escape(f"{event.kind} {event.targets} {event.detail} "
                            f"[{event.start / 1e9:.2f}s, {end_t / 1e9:.2f}s]")
        parts.append(f'<rect x="{x(event.start):.1f}" y="{top}" '
                     f'width="{max(2, x(end_t) - x(event.start)):.1f}" '
                     f'height="{faults_top - top + 20}" fill="{colour}" opacity="0.18">'
                     f'<title>{title}</title></rect>')
        parts.append(f'<text x="{x(event.start) + 2:.1f}" y="{faults_top + 14}" font-size="10" '
                     f'fill="{colour}">{html.escape(event.kind)} {",".join(event.targets)}</text>')
    # latency scatter, log scale from 0.1 ms to 10 s
    import math

    lat_top = faults_top + 30
    lat_h = 300
    parts.append(f'<text x="5" y="{lat_top + 12}" font-size="12">latency</text>')
    for exp, label in ((-4, "0.1ms"), (-3, "1ms"), (-2, "10ms"), (-1, "100ms"), (0, "1s"),
                       (1, "10s")):
        y = lat_top + lat_h - (exp + 4) / 5 * lat_h
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#dee2e6"/><text x="{left - 40}" y="{y + 4:.1f}" '
                     f'font-size="10">{label}</text>')
    for event in faults:
        colour = FAULT_COLOURS.get(event.kind.split("-")[0], "#868e96")
        parts.append(f'<rect x="{x(event.start):.1f}" y="{lat_top}" '
                     f'width="{max(2, x(event.end or end) - x(event.start)):.1f}" '
                     f'height="{lat_h}" fill="{colour}" opacity="0.10"/>')
    step = max(1, len(ops) // 20000)  # at most ~20k dots
    for op in ops[::step]:
        if op.client < 0:
            continue
        if op.status == UNKNOWN:
            done = op.extra.get("gave_up", op.invoke)
            colour = "#e03131"
        else:
            done = op.complete
            colour = "#2b8a3e" if op.status == OK else "#868e96"
        latency = max(1e-4, (done - op.invoke) / 1e9)
        y = lat_top + lat_h - (math.log10(latency) + 4) / 5 * lat_h
        parts.append(f'<circle cx="{x(done):.1f}" cy="{max(lat_top, y):.1f}" r="1.3" '
                     f'fill="{colour}"/>')
    # time axis
    axis_y = lat_top + lat_h + 15
    seconds = int(end / 1e9) + 1
    tick = max(1, seconds // 20)
    for s in range(0, seconds, tick):
        parts.append(f'<text x="{x(s * 10**9):.1f}" y="{axis_y}" font-size="10">{s}s</text>')
    height = axis_y + 20
    legend = " ".join(f'<span style="background:{c};padding:0 6px">&nbsp;</span> {html.escape(r)}'
                      for r, c in ROLE_COLOURS.items())
    fault_legend = " ".join(
        f'<span style="background:{c};opacity:.5;padding:0 6px">&nbsp;</span> {k}'
        for k, c in FAULT_COLOURS.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>respkv jepsen seed {result['seed']}</title>
<style>body{{font-family:sans-serif;margin:16px}} pre{{white-space:pre-wrap}}</style></head>
<body><h2>{html.escape(result.get('verdict_line', ''))}</h2>
<p>roles: {legend}<br>faults: {fault_legend}<br>
latency dots: <span style="color:#2b8a3e">ok</span>, <span style="color:#868e96">failed</span>,
<span style="color:#e03131">unknown (drawn when the client gave up)</span>. Hover for details.</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">
{chr(10).join(parts)}
</svg>
<h3>faults</h3><pre>{html.escape(chr(10).join(
        f"{e.start / 1e9:8.2f}s - {(e.end or end) / 1e9:8.2f}s  {e.kind:18} "
        f"{','.join(e.targets):12} {e.detail}" for e in faults))}</pre>
</body></html>"""
    path.write_text(page)
