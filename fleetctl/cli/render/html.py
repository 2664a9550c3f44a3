"""The report as one self-contained HTML page: inline CSS and SVG, no script, no assets.

The page is meant to be opened from a file, mailed or attached to a ticket, so nothing
in it may reach out: no fonts, no stylesheets, no images but inline SVG. Its markup is
the jinja2 template `templates/report.html.j2`, autoescaped: this module computes only
the figures, geometry and colours the template places.
"""

from __future__ import annotations

import colorsys
from functools import cache
from typing import Any

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


def _gb(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _p95(t: Tenant) -> dict[str, str] | None:
    if t.predicted_p95_ms is None or not t.sla_ms:
        return None
    ratio = t.predicted_p95_ms / t.sla_ms
    cls = "bad" if ratio > 1 + 1e-9 else "warn" if ratio >= 0.99 else "ok"
    return {"cls": cls, "value": f"{t.predicted_p95_ms:.1f}", "sla": f"{t.sla_ms:g}"}


def _bar(g: GpuRow, fills: dict[str, str]) -> dict[str, Any]:
    """One GPU as a bar: memory segments per tenant, a thin compute bar beneath."""
    scale = BAR_W / g.capacity_gb if g.capacity_gb else 0.0
    x = 0.0
    segments = []
    for t in g.tenants:
        w = min(t.memory_gb * scale, BAR_W - x)
        fill = fills.get(t.deployment, "#9ca3af")
        label = f"{t.deployment}  {_gb(t.memory_gb)} GB"
        if len(label) * CHAR_W + 16 > w:
            label = t.deployment
        fits = len(label) * CHAR_W + 16 <= w
        segments.append(
            {
                "deployment": t.deployment,
                "replica": t.replica,
                "x": f"{x:.2f}",
                "w": f"{w:.2f}",
                "fill": fill,
                "ink": _ink(fill),
                "memory": _gb(t.memory_gb),
                "compute": f"{100 * t.util:.1f}",
                "label": label if fits else None,
                "label_x": f"{x + 10:.2f}",
            }
        )
        x += w
    reserve = None
    if g.reserve_gb:
        rx = (g.capacity_gb - g.reserve_gb) * scale
        reserve = {"x": f"{rx:.2f}", "w": f"{BAR_W - rx:.2f}", "gb": _gb(g.reserve_gb)}
    return {
        "key": g.key,
        "index": g.index,
        "model": g.model,
        "used_gb": f"{g.used_gb:g}",
        "capacity_gb": f"{g.capacity_gb:g}",
        "used_label": _gb(g.used_gb),
        "capacity_label": _gb(g.capacity_gb),
        "height": BAR_H + 4 + COMPUTE_H,
        "clip": "clip-" + g.key.replace("/", "-"),
        "segments": segments,
        "reserve": reserve,
        "cy": BAR_H + 4,
        "util_w": f"{min(g.util, 1.0) * BAR_W:.2f}",
        "compute": f"{100 * g.util:.0f}",
        "memory_pct": f"{100 * g.memory_share:.0f}",
        "chips": [
            {
                "fill": fills.get(t.deployment, "#9ca3af"),
                "deployment": t.deployment,
                "replica": t.replica,
                "memory": _gb(t.memory_gb),
                "tp": t.gpus if t.gpus > 1 else None,
                "p95": _p95(t),
            }
            for t in g.tenants
        ],
    }


def _hosts(r: Report, fills: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for g in r.gpu_rows:
        if not out or out[-1]["host"] != g.host:
            same = [x for x in r.gpu_rows if x.host == g.host]
            kind = f"{len(same)} × {same[0].model or 'GPU'} {_gb(same[0].capacity_gb)} GB"
            out.append({"host": g.host, "kind": kind, "simulated": g.simulated, "gpus": []})
        out[-1]["gpus"].append(_bar(g, fills))
    return out


def _cards(r: Report) -> list[dict[str, str]]:
    c = r.costs
    n = len(r.unplaced)
    placed = (
        f"{n} replica{'s' if n != 1 else ''} could not be placed" if n else "the plan's placement"
    )
    return [
        {
            "cls": "accent",
            "label": "GPUs after packing",
            "value": str(r.gpus_packed),
            "small": f"of {r.gpus_total}",
            "note": placed,
        },
        {
            "cls": "",
            "label": "One GPU per replica",
            "value": str(r.gpus_naive),
            "small": "",
            "note": "no sharing at all",
        },
        {
            "cls": "",
            "label": "Lower bound",
            "value": str(r.gpus_lower_bound),
            "small": "",
            "note": "no placement can use fewer",
        },
        {
            "cls": "",
            "label": "Memory demanded",
            "value": _gb(r.demanded_gb),
            "small": "GB",
            "note": f"of {_gb(r.capacity_gb)} GB usable",
        },
        {
            "cls": "",
            "label": "Cost per month",
            "value": usd(c.total_packed_usd_month),
            "small": "",
            "note": f"saves {usd(c.saved_usd_month)} vs one per replica",
        },
    ]


def _ms(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:.1f}"


def _finding(f: PairFinding) -> dict[str, str]:
    return {
        "deployment": f.deployment,
        "beside": f.beside,
        "p95": _ms(f.predicted_p95_ms),
        "sla": f"{f.sla_ms:g}",
        "gpu": f.gpu,
    }


def _cost_bars(r: Report) -> dict[str, Any]:
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
        gw = gpus / top * (width - label_w - 70)
        lw = lic / top * (width - label_w - 70)
        rows.append(
            {
                "name": name,
                "y": i * (h + 10),
                "gw": f"{gw:.1f}",
                "lx": f"{label_w + gw:.1f}",
                "lw": f"{lw:.1f}",
                "tx": f"{label_w + gw + lw + 6:.1f}",
                "fill": "#4f46e5" if i == 0 else "#9ca3af",
                "gpus": usd(gpus),
                "licence": usd(lic),
                "total": usd(gpus + lic),
            }
        )
    return {
        "width": width,
        "height": 2 * (h + 10) + 18,
        "label_w": label_w,
        "h": h,
        "rows": rows,
        "legend_y": 2 * (h + 10) + 12,
    }


def _costs(r: Report) -> dict[str, Any]:
    c = r.costs
    return {
        "runs_nim": c.runs_nim,
        "packed": usd(c.packed_usd_month),
        "naive": usd(c.naive_usd_month),
        "licence_packed": usd(c.nim_licence_packed_usd_month),
        "licence_naive": usd(c.nim_licence_naive_usd_month),
        "nim_gpus_packed": c.nim_gpus_packed,
        "nim_gpus_naive": c.nim_gpus_naive,
        "total_packed": usd(c.total_packed_usd_month),
        "total_naive": usd(c.total_naive_usd_month),
        "gpu_hour": usd(c.gpu_hour_usd),
        "saved": usd(c.saved_usd_month),
        "saved_year": usd(12 * c.saved_usd_month),
    }


def _deployments(r: Report, fills: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": d.name,
            "fill": fills[d.name],
            "runtime": d.runtime,
            "badge": f"rt-{d.runtime}" if d.runtime in ("nim", "triton") else "rt-other",
            "framework": d.framework or "—",
            "replicas": d.replicas,
            "memory": _gb(d.memory_gb),
            "gpus": d.gpus,
            "sla": "—" if d.sla_ms is None else f"{d.sla_ms:g} ms",
        }
        for d in r.deployments
    ]


@cache
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("fleetctl.cli.render", "templates"),
        autoescape=True,  # every template: a model name is text, never markup
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def render_html(r: Report) -> str:
    fills = colours(r)
    return str(
        _template().render(
            r=r,
            cards=_cards(r),
            hosts=_hosts(r, fills),
            conflicts=[_finding(f) for f in r.conflicts],
            at_limit=[_finding(f) for f in r.at_limit],
            bars=_cost_bars(r),
            costs=_costs(r),
            hours_per_month=HOURS_PER_MONTH,
            deployments=_deployments(r, fills),
            bar_w=BAR_W,
            bar_h=BAR_H,
            compute_h=COMPUTE_H,
            label_y=f"{BAR_H / 2 + 4:.1f}",
        )
    )
