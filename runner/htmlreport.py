"""``provision report FILE --html OUT``: one self-contained static page about a pipeline.

No script, no font, no request: inline CSS and charts drawn as inline SVG on the server side, so
the page opens from a mail attachment or an artefact store as it was written, and what a chart
shows is in the DOM (each bar carries ``data-run``, ``data-action`` and ``data-value``). The
data comes from :func:`runner.engine.overview.overview`; everything shown passes through the same
redaction as the logs.
"""

from __future__ import annotations

import html
from typing import Any

from runner import secrets

ACTIONS = ("added", "updated", "renamed", "disabled", "deleted", "failed")
COLOURS = {"added": "#2e7d32", "updated": "#1565c0", "renamed": "#6a1b9a", "disabled": "#ef6c00",
           "deleted": "#c62828", "failed": "#212121"}
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 3px 8px;
border-bottom: 1px solid #eee; vertical-align: top; } th { background: #f5f5f5; }
.bad { color: #c62828; font-weight: 600; } .ok { color: #2e7d32; } .muted { color: #777; }
.legend span { display: inline-block; margin-right: 1em; } .legend i { display: inline-block; width: 10px;
height: 10px; margin-right: 4px; }
code { background: #f5f5f5; padding: 0 3px; }
"""


def render(data: dict[str, Any]) -> str:
    """The page for ``data`` (runs oldest first, with their counts and durations; failures grouped
    by error; the pending queue; held deletes; quarantine)."""
    runs = data["runs"]
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>provision: {shown(data['pipeline'])}"
             f"</title><style>{CSS}</style></head><body>",
             f"<h1>provision: pipeline <code>{shown(data['pipeline'])}</code></h1>",
             f"<p class=muted>state store {shown(data['state'])}; report made {shown(data['generated'])}; "
             f"{len(runs)} runs shown</p>"]
    if data.get("quarantine"):
        parts.append(f"<p class=bad id=quarantine>QUARANTINED: {shown(data['quarantine'])}</p>")
    else:
        parts.append("<p class=ok id=quarantine>not quarantined</p>")
    parts += ["<h2>Objects per run</h2>", _legend(), _action_chart(runs),
              "<h2>Run durations</h2>", _duration_chart(runs), _runs_table(runs),
              "<h2>Failures, grouped by error</h2>", _failures(data["failures"]),
              "<h2>The slowest operations</h2>", _slowest(data.get("slowest") or []),
              "<h2>Pending and in-doubt exports</h2>", _pending(data["pending"]),
              "<h2>Held by the deletion guard</h2>", _held(data["held"]),
              "</body></html>"]
    return "\n".join(parts)


def shown(value: Any) -> str:
    """Text for the page: redacted as the logs are, then HTML-escaped."""
    return html.escape(secrets.redact(str(value)), quote=True)


def _legend() -> str:
    return "<p class=legend>" + "".join(f"<span><i style='background:{COLOURS[a]}'></i>{a}</span>"
                                        for a in ACTIONS) + "</p>"


def _action_chart(runs: list[dict[str, Any]]) -> str:
    """Stacked bars, one per run: how many objects each action touched (all object types)."""
    if not runs:
        return "<p class=muted>no runs yet</p>"
    totals = [{a: sum((c.get(a) or 0) for c in (r.get("object_types") or {}).values()) for a in ACTIONS} for r in runs]
    top = max(1, max(sum(t.values()) for t in totals))
    width, height, gap = 900, 220, 4
    bar = max(4, (width - 40) // len(runs) - gap)
    shapes = []
    for i, (run, total) in enumerate(zip(runs, totals, strict=True)):
        x, y = 40 + i * (bar + gap), height - 20
        for action in ACTIONS:
            value = total[action]
            if not value:
                continue
            h = max(1.0, (height - 40) * value / top)
            y -= h
            shapes.append(f"<rect class=bar x={x} y={y:.1f} width={bar} height={h:.1f} fill='{COLOURS[action]}' "
                          f"data-run='{shown(run['run_id'])}' data-action={action} data-value={value}>"
                          f"<title>{shown(run['run_id'])}: {value} {action}</title></rect>")
    axis = (f"<text x=0 y=20 font-size=11>{top}</text><text x=0 y={height - 20} font-size=11>0</text>"
            f"<line x1=38 y1={height - 20} x2={width} y2={height - 20} stroke='#999'/>")
    return (f"<svg id=actions role=img aria-label='objects per action per run' width={width} height={height} "
            f"xmlns='http://www.w3.org/2000/svg'>{axis}{''.join(shapes)}</svg>")


def _duration_chart(runs: list[dict[str, Any]]) -> str:
    timed = [r for r in runs if r.get("duration_seconds") is not None]
    if not timed:
        return "<p class=muted>no finished runs</p>"
    top = max(0.001, max(r["duration_seconds"] for r in timed))
    width, height, gap = 900, 160, 4
    bar = max(4, (width - 40) // len(timed) - gap)
    shapes = []
    for i, run in enumerate(timed):
        h = max(1.0, (height - 40) * run["duration_seconds"] / top)
        colour = "#c62828" if run["status"] not in ("ok", "partial") else "#607d8b"
        shapes.append(f"<rect class=duration x={40 + i * (bar + gap)} y={height - 20 - h:.1f} width={bar} "
                      f"height={h:.1f} fill='{colour}' data-run='{shown(run['run_id'])}' "
                      f"data-value={run['duration_seconds']}><title>{shown(run['run_id'])}: "
                      f"{run['duration_seconds']} s, {shown(run['status'])}</title></rect>")
    return (f"<svg id=durations role=img aria-label='run durations' width={width} height={height} "
            f"xmlns='http://www.w3.org/2000/svg'><text x=0 y=20 font-size=11>{top:.1f} s</text>"
            f"{''.join(shapes)}</svg>")


def _runs_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for run in reversed(runs):
        counts = run.get("object_types") or {}
        cells = "".join(f"<td>{sum((c.get(a) or 0) for c in counts.values())}</td>" for a in ACTIONS)
        status = run["status"]
        rows.append(f"<tr><td><code>{shown(run['run_id'])}</code></td><td>{shown(run['kind'])}</td>"
                    f"<td class={'ok' if status in ('ok', 'partial') else 'bad'}>{shown(status)}</td>"
                    f"<td>{'' if run.get('duration_seconds') is None else run['duration_seconds']}</td>{cells}"
                    f"<td>{shown((run.get('manifest_commit') or '')[:12])}</td></tr>")
    head = "".join(f"<th>{a}</th>" for a in ACTIONS)
    return (f"<table id=runs><tr><th>run</th><th>kind</th><th>status</th><th>seconds</th>{head}<th>commit</th></tr>"
            + "".join(rows) + "</table>")


def _failures(groups: list[dict[str, Any]]) -> str:
    if not groups:
        return "<p class=ok id=failures>no object is failing</p>"
    rows = "".join(f"<tr><td>{g['count']}</td><td>{shown(g['object_type'])}</td><td>{shown(g['error'])}</td>"
                   f"<td>{', '.join(f'<code>{shown(a)}</code>' for a in g['examples'])}</td></tr>" for g in groups)
    return f"<table id=failures><tr><th>objects</th><th>type</th><th>error</th><th>for example</th></tr>{rows}</table>"


def _slowest(found: list[dict[str, Any]]) -> str:
    if not found:
        return "<p class=muted id=slowest>no operation timed yet</p>"
    rows = "".join(f"<tr><td>{o['seconds']}</td><td>{shown(o['object_type'])}</td><td><code>{shown(o['anchor'])}</code></td>"
                   f"<td>{shown(o['action'])}</td><td><code>{shown(o['run_id'])}</code></td></tr>" for o in found)
    return (f"<table id=slowest><tr><th>seconds</th><th>type</th><th>anchor</th><th>action</th><th>run</th></tr>"
            f"{rows}</table>")


def _pending(queue: list[dict[str, Any]]) -> str:
    if not queue:
        return "<p class=ok id=pending>nothing pending</p>"
    rows = "".join(f"<tr><td>{shown(p['object_type'])}</td><td><code>{shown(p['anchor'])}</code></td><td>{shown(p['action'])}</td>"
                   f"<td>{shown(p['state'])}</td><td>{p['attempts']}</td><td>{shown(p.get('next_attempt') or '')}</td>"
                   f"<td>{shown(p.get('last_error') or '')}</td></tr>" for p in queue)
    return (f"<table id=pending><tr><th>type</th><th>anchor</th><th>action</th><th>state</th><th>attempts</th>"
            f"<th>next attempt</th><th>last error</th></tr>{rows}</table>")


def _held(held: dict[str, Any]) -> str:
    if not held:
        return "<p class=ok id=held>nothing held</p>"
    rows = "".join(f"<tr><td>{shown(name)}</td><td><code>{shown(h['anchor'])}</code></td><td>{shown(h['action'])}</td>"
                   f"<td>{'approved' if h['approved'] else 'waiting'}</td><td>{shown(info['run'])}</td></tr>"
                   for name, info in held.items() for h in info["objects"])
    return (f"<table id=held><tr><th>type</th><th>anchor</th><th>action</th><th>approval</th><th>held in run</th></tr>"
            f"{rows}</table>")
