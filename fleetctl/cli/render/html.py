"""The report as one self-contained HTML page: inline CSS and SVG, no script, no assets.

The page is meant to be opened from a file, mailed or attached to a ticket, so nothing
in it may reach out: no fonts, no stylesheets, no images but inline SVG.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from html import escape

from fleetctl.decide.advise import usd
from fleetctl.decide.conflicts import PairFinding
from fleetctl.decide.report import HOURS_PER_MONTH, GpuRow, Report, Tenant

BAR_W = 720  # SVG units of a GPU's full memory
BAR_H = 34
COMPUTE_H = 6
# One hue per model, a lightness per version: versions of one model read as one family.
HUES = (217, 158, 36, 266, 352, 190, 322, 88, 22, 240)
LIGHTNESS = (0.46, 0.34, 0.60, 0.27, 0.70)
CHAR_W = 7.0  # average width of a 12px label character, to decide if a label fits

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6fa;color:#1f2937;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 32px 48px}
header{display:flex;justify-content:space-between;align-items:flex-end;margin-bottom:18px}
h1{font-size:26px;margin:0;letter-spacing:-.01em}
h2{font-size:16px;margin:0 0 12px;color:#111827}
h3{font-size:13px;margin:14px 0 4px;color:#92400e}
table.limit td{padding:4px 8px;font-size:13px}
.sub{color:#6b7280}
.cards{display:grid;grid-template-columns:repeat(5,1fr);gap:14px;margin-bottom:18px}
.card,.panel{background:#fff;border-radius:12px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.08)}
.card{padding:14px 16px}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280}
.card .value{font-size:30px;font-weight:700;line-height:1.2;margin-top:4px}
.card .value small{font-size:15px;font-weight:500;color:#6b7280}
.card.accent{background:linear-gradient(135deg,#1d4ed8,#4f46e5);color:#fff}
.card.accent .label,.card.accent .value small,.card.accent .note{color:#dbe4ff}
.note{font-size:12px;color:#6b7280}
.panel{padding:18px 20px;margin-bottom:18px}
.grid2{display:grid;grid-template-columns:1.15fr 1fr;gap:18px}
.host{margin:4px 0 6px;font-weight:600}
.host span{font-weight:400;color:#6b7280}
.gpu{display:grid;grid-template-columns:92px 1fr 132px;gap:12px;align-items:center;padding:8px 0;border-top:1px solid #eef0f4}
.gpu:first-of-type{border-top:none}
.gpu .name{font-weight:600}
.gpu .name small{display:block;font-weight:400;color:#6b7280;font-size:11px}
.gpu .fig{text-align:right;font-variant-numeric:tabular-nums}
.gpu .fig b{font-size:15px}
.gpu svg{display:block;width:100%;height:auto}
.chips{display:flex;flex-wrap:wrap;gap:4px 12px;margin-top:5px;font-size:12px;color:#374151}
.chip{white-space:nowrap}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:5px;vertical-align:0}
.ok{color:#047857}.warn{color:#b45309}.bad{color:#b91c1c}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280;text-align:left;font-weight:600;padding:6px 8px;border-bottom:1px solid #e5e7eb}
td{padding:7px 8px;border-bottom:1px solid #f0f1f4}
td.n,th.n{text-align:right}
tr.total td{font-weight:700;border-bottom:none;border-top:2px solid #e5e7eb}
.badge{display:inline-block;padding:1px 7px;border-radius:999px;font-size:11px;font-weight:600}
.rt-nim{background:#dcfce7;color:#166534}.rt-triton{background:#dbeafe;color:#1e40af}.rt-other{background:#f3f4f6;color:#374151}
ul.find{list-style:none;padding:0;margin:0}
ul.find li{padding:8px 10px;border-radius:8px;margin-bottom:6px;background:#fef2f2;border-left:4px solid #dc2626}
ul.find li.lim{background:#fffbeb;border-left-color:#d97706}
ul.find li.none{background:#ecfdf5;border-left-color:#059669}
ul.find small{color:#6b7280}
.saved{margin-top:10px;padding:10px 12px;border-radius:8px;background:#ecfdf5;color:#065f46;font-weight:600}
.groups{display:flex;gap:28px;flex-wrap:wrap}
.groups div{min-width:150px}
.cost-bars{display:block;margin:0 0 12px}
footer{color:#9ca3af;font-size:12px;text-align:center;margin-top:8px}
"""


def _hex(h: float, light: float, sat: float = 0.68) -> str:
    r, g, b = colorsys.hls_to_rgb(h / 360, light, sat)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def colours(report: Report) -> dict[str, str]:
    """A colour per deployment: the model's hue, the version's lightness."""
    hue: dict[str, int] = {}
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for d in report.deployments:
        hue.setdefault(d.model, HUES[len(hue) % len(HUES)])
        k = seen.get(d.model, 0)
        seen[d.model] = k + 1
        out[d.name] = _hex(hue[d.model], LIGHTNESS[k % len(LIGHTNESS)])
    return out


def _ink(fill: str) -> str:
    """Label colour that stays readable on `fill` (relative luminance)."""
    r, g, b = (int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111827" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 else "#ffffff"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _gb(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _p95(t: Tenant) -> str:
    if t.predicted_p95_ms is None or not t.sla_ms:
        return ""
    ratio = t.predicted_p95_ms / t.sla_ms
    cls = "bad" if ratio > 1 + 1e-9 else "warn" if ratio >= 0.99 else "ok"
    return f' · <span class="{cls}">p95 {t.predicted_p95_ms:.1f} / {t.sla_ms:g} ms</span>'


def _tp(t: Tenant) -> str:
    return f" · tensor parallel over {t.gpus} GPUs" if t.gpus > 1 else ""


def gpu_svg(g: GpuRow, fills: dict[str, str]) -> str:
    """One GPU as a bar: memory segments per tenant, a thin compute bar beneath."""
    height = BAR_H + 4 + COMPUTE_H
    parts = [
        f'<svg class="gpu-bar" data-gpu="{_e(g.key)}" data-used-gb="{g.used_gb:g}" data-capacity-gb="{g.capacity_gb:g}" '
        f'viewBox="0 0 {BAR_W} {height}" role="img" aria-label="{_e(g.key)}: {_gb(g.used_gb)} of {_gb(g.capacity_gb)} GB">',
        f'<rect x="0" y="0" width="{BAR_W}" height="{BAR_H}" rx="7" fill="#eef1f6"/>',
    ]
    x = 0.0
    scale = BAR_W / g.capacity_gb if g.capacity_gb else 0.0
    clip = f"clip-{_e(g.key).replace('/', '-')}"
    parts.append(
        f'<clipPath id="{clip}"><rect x="0" y="0" width="{BAR_W}" height="{BAR_H}" rx="7"/></clipPath>'
    )
    parts.append(f'<g clip-path="url(#{clip})">')
    for t in g.tenants:
        w = min(t.memory_gb * scale, BAR_W - x)
        fill = fills.get(t.deployment, "#9ca3af")
        parts.append(
            f'<rect class="seg" data-deployment="{_e(t.deployment)}" x="{x:.2f}" y="0" width="{w:.2f}" height="{BAR_H}" '
            f'fill="{fill}" stroke="#ffffff" stroke-width="1.5"><title>{_e(t.deployment)}#{t.replica}: '
            f"{_gb(t.memory_gb)} GB, {100 * t.util:.1f}% compute</title></rect>"
        )
        label = f"{t.deployment}  {_gb(t.memory_gb)} GB"
        if len(label) * CHAR_W + 16 > w:
            label = t.deployment
        if len(label) * CHAR_W + 16 <= w:
            parts.append(
                f'<text x="{x + 10:.2f}" y="{BAR_H / 2 + 4:.1f}" font-size="12" font-weight="600" '
                f'fill="{_ink(fill)}">{_e(label)}</text>'
            )
        x += w
    parts.append("</g>")
    if g.reserve_gb:
        rx = (g.capacity_gb - g.reserve_gb) * scale
        parts.append(
            f'<rect x="{rx:.2f}" y="0" width="{BAR_W - rx:.2f}" height="{BAR_H}" fill="#d1d5db" opacity=".6">'
            f"<title>reserved {_gb(g.reserve_gb)} GB</title></rect>"
        )
    if not g.tenants:
        parts.append(
            f'<text x="{BAR_W / 2}" y="{BAR_H / 2 + 4:.1f}" font-size="12" text-anchor="middle" fill="#9ca3af">idle</text>'
        )
    cy = BAR_H + 4
    util_w = min(g.util, 1.0) * BAR_W
    parts.append(
        f'<rect x="0" y="{cy}" width="{BAR_W}" height="{COMPUTE_H}" rx="3" fill="#eef1f6"/>'
    )
    parts.append(
        f'<rect x="0" y="{cy}" width="{util_w:.2f}" height="{COMPUTE_H}" rx="3" fill="#475569">'
        f"<title>compute {100 * g.util:.0f}%</title></rect>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _gpu_rows(report: Report, fills: dict[str, str]) -> str:
    out: list[str] = []
    host = None
    for g in report.gpu_rows:
        if g.host != host:
            host = g.host
            same = [r for r in report.gpu_rows if r.host == host]
            kind = f"{len(same)} × {same[0].model or 'GPU'} {_gb(same[0].capacity_gb)} GB"
            sim = " · simulated" if g.simulated else ""
            out.append(f'<div class="host">{_e(host)} <span>{_e(kind)}{sim}</span></div>')
        chips = "".join(
            f'<span class="chip"><span class="dot" style="background:{fills.get(t.deployment, "#9ca3af")}"></span>'
            f"{_e(t.deployment)}#{t.replica} · {_gb(t.memory_gb)} GB{_tp(t)}{_p95(t)}</span>"
            for t in g.tenants
        )
        out.append(
            f'<div class="gpu"><div class="name">GPU {g.index}<small>{_e(g.model)}</small></div>'
            f'<div>{gpu_svg(g, fills)}<div class="chips">{chips}</div></div>'
            f'<div class="fig"><b>{_gb(g.used_gb)} / {_gb(g.capacity_gb)} GB</b><br>'
            f'<span class="note">memory {100 * g.memory_share:.0f}%<br>compute {100 * g.util:.0f}%</span></div></div>'
        )
    return "".join(out)


def _cards(r: Report) -> str:
    c = r.costs
    n = len(r.unplaced)
    placed = (
        f"{n} replica{'s' if n != 1 else ''} could not be placed" if n else "the plan's placement"
    )
    cards = [
        (
            "accent",
            "GPUs after packing",
            f"{r.gpus_packed} <small>of {r.gpus_total}</small>",
            placed,
        ),
        ("", "One GPU per replica", str(r.gpus_naive), "no sharing at all"),
        ("", "Lower bound", str(r.gpus_lower_bound), "no placement can use fewer"),
        (
            "",
            "Memory demanded",
            f"{_gb(r.demanded_gb)} <small>GB</small>",
            f"of {_gb(r.capacity_gb)} GB usable",
        ),
        (
            "",
            "Cost per month",
            usd(c.total_packed_usd_month),
            f"saves {usd(c.saved_usd_month)} vs one per replica",
        ),
    ]
    return (
        '<section class="cards">'
        + "".join(
            f'<div class="card {cls}"><div class="label">{label}</div><div class="value">{value}</div>'
            f'<div class="note">{_e(note)}</div></div>'
            for cls, label, value, note in cards
        )
        + "</section>"
    )


def _findings(conflicts: Sequence[PairFinding], at_limit: Sequence[PairFinding]) -> str:
    items = [
        f'<li class="sla-conflict"><b>{_e(f.deployment)}</b> beside <b>{_e(f.beside)}</b>: predicted '
        f'<span class="bad">{_ms(f.predicted_p95_ms)} ms</span> &gt; {f.sla_ms:g} ms SLA <small>on {_e(f.gpu)}</small></li>'
        for f in conflicts
    ]
    if not conflicts:
        items.append(
            '<li class="none">No pair that fits one GPU by memory is kept apart by its SLAs.</li>'
        )
    out = '<ul class="find">' + "".join(items) + "</ul>"
    if at_limit:
        rows = "".join(
            f"<tr><td>{_e(f.deployment)}</td><td>{_e(f.beside)}</td>"
            f"<td class='n warn'>{_ms(f.predicted_p95_ms)} / {f.sla_ms:g} ms</td></tr>"
            for f in at_limit
        )
        out += (
            "<h3>Allowed, with no headroom</h3><table class='limit'><tr><th>Tenant</th><th>Beside</th>"
            f"<th class='n'>p95 / SLA</th></tr>{rows}</table>"
        )
    return out


def _ms(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.1f}"


def _costs(r: Report) -> str:
    c = r.costs
    rows = [("GPUs", usd(c.packed_usd_month), usd(c.naive_usd_month))]
    if c.runs_nim:
        rows.append(
            (
                "NIM licence",
                f"{usd(c.nim_licence_packed_usd_month)} <span class='note'>({c.nim_gpus_packed} GPU)</span>",
                f"{usd(c.nim_licence_naive_usd_month)} <span class='note'>({c.nim_gpus_naive} GPU)</span>",
            )
        )
    body = "".join(
        f"<tr><td>{a}</td><td class='n'>{b}</td><td class='n'>{d}</td></tr>" for a, b, d in rows
    )
    body += (
        f"<tr class='total'><td>Total</td><td class='n'>{usd(c.total_packed_usd_month)}</td>"
        f"<td class='n'>{usd(c.total_naive_usd_month)}</td></tr>"
    )
    return (
        _cost_bars(r)
        + f"<table class='costs'><tr><th></th><th class='n'>Packed · {r.gpus_packed} GPUs</th>"
        f"<th class='n'>One per replica · {r.gpus_naive} GPUs</th></tr>{body}</table>"
        f"<div class='note' style='margin-top:6px'>{usd(c.gpu_hour_usd)} per GPU-hour × {HOURS_PER_MONTH} hours; "
        "a GPU hosting any NIM replica needs a licence.</div>"
        f"<div class='saved'>Packing saves {usd(c.saved_usd_month)} per month "
        f"({usd(12 * c.saved_usd_month)} per year).</div>"
    )


def _cost_bars(r: Report) -> str:
    """Packed against one-GPU-per-replica as two bars, GPU and licence stacked."""
    c = r.costs
    top = max(c.total_naive_usd_month, c.total_packed_usd_month, 1e-9)
    width, label_w, h = 460, 120, 22
    rows = []
    for i, (name, gpus, lic) in enumerate(
        (
            ("Packed", c.packed_usd_month, c.nim_licence_packed_usd_month),
            ("One per replica", c.naive_usd_month, c.nim_licence_naive_usd_month),
        )
    ):
        y = i * (h + 10)
        gw = gpus / top * (width - label_w - 70)
        lw = lic / top * (width - label_w - 70)
        rows.append(
            f'<text x="0" y="{y + 15}" font-size="12" fill="#374151">{name}</text>'
            f'<rect x="{label_w}" y="{y}" width="{gw:.1f}" height="{h}" rx="4" fill="{"#4f46e5" if i == 0 else "#9ca3af"}">'
            f"<title>GPUs {usd(gpus)}</title></rect>"
            f'<rect x="{label_w + gw:.1f}" y="{y}" width="{lw:.1f}" height="{h}" fill="#22c55e">'
            f"<title>NIM licence {usd(lic)}</title></rect>"
            f'<text x="{label_w + gw + lw + 6:.1f}" y="{y + 15}" font-size="12" font-weight="600" fill="#111827">'
            f"{usd(gpus + lic)}</text>"
        )
    legend = (
        f'<text x="{label_w}" y="{2 * (h + 10) + 12}" font-size="11" fill="#6b7280">'
        '<tspan fill="#4f46e5">■</tspan> GPUs   <tspan fill="#22c55e">■</tspan> NIM licence</text>'
        if c.runs_nim
        else ""
    )
    return (
        f'<svg class="cost-bars" viewBox="0 0 {width} {2 * (h + 10) + 18}" width="100%" role="img" '
        f'aria-label="monthly cost, packed vs one GPU per replica">{"".join(rows)}{legend}</svg>'
    )


def _runtime_badge(runtime: str) -> str:
    cls = f"rt-{runtime}" if runtime in ("nim", "triton") else "rt-other"
    return f'<span class="badge {cls}">{_e(runtime)}</span>'


def _deployments(r: Report, fills: dict[str, str]) -> str:
    head = (
        "<tr><th>Deployment</th><th>Runtime</th><th>Framework</th><th class='n'>Replicas</th>"
        "<th class='n'>Memory</th><th class='n'>SLA</th></tr>"
    )
    rows = "".join(
        f"<tr><td><span class='dot' style='background:{fills[d.name]}'></span>{_e(d.name)}</td>"
        f"<td>{_runtime_badge(d.runtime)}</td><td>{_e(d.framework or '—')}</td><td class='n'>{d.replicas}</td>"
        f"<td class='n'>{_gb(d.memory_gb)} GB{' × ' + str(d.gpus) + ' GPUs' if d.gpus > 1 else ''}</td>"
        f"<td class='n'>{'—' if d.sla_ms is None else f'{d.sla_ms:g} ms'}</td></tr>"
        for d in r.deployments
    )
    return f"<table>{head}{rows}</table>"


def _groups(title: str, groups: Mapping[str, Sequence[str]]) -> str:
    inner = "".join(
        f"<div><div class='note'>{_e(k)} · {len(v)}</div>{', '.join(_e(n) for n in v)}</div>"
        for k, v in groups.items()
    )
    return f"<div><h2>{title}</h2><div class='groups'>{inner}</div></div>"


def render_html(r: Report) -> str:
    fills = colours(r)
    unplaced = ""
    if r.unplaced:
        unplaced = (
            '<section class="panel"><h2>Unplaced</h2><ul class="find">'
            + "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in r.unplaced)
            + "</ul></section>"
        )
    source = f" · {_e(r.inventory)}" if r.inventory else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Fleet report</title><style>{CSS}</style></head>
<body><main>
<header><div><h1>Fleet report</h1><div class="sub">{r.models} models · {len(r.deployments)} deployments{source}</div></div>
<div class="sub">offline plan</div></header>
{_cards(r)}
<section class="panel" id="gpu-map"><h2>GPU map <span class="note">· bar length is memory, segments are tenants, the thin bar is compute</span></h2>
{_gpu_rows(r, fills)}</section>
{unplaced}
<div class="grid2">
<section class="panel" id="sla"><h2>What the SLAs kept apart</h2>{_findings(r.conflicts, r.at_limit)}</section>
<section class="panel" id="costs"><h2>Cost per month</h2>{_costs(r)}</section>
</div>
<section class="panel" id="deployments"><h2>Deployments</h2>{_deployments(r, fills)}</section>
<section class="panel" id="models"><div class="grid2">{_groups("Models by runtime", r.by_runtime)}{_groups("Models by framework", r.by_framework)}</div></section>
<footer>fleetctl report</footer>
</main></body></html>
"""
