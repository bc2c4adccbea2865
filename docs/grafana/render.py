#!/usr/bin/python3
"""Draw the panels of a Grafana dashboard (classic JSON model) from a
Prometheus server's data, in the dashboard's own grid, into one PNG.

Grafana itself cannot be installed on the project's machines, so the
picture in docs/metrics.md is drawn by this script from a real run's
Prometheus (test/cri TestDashboardPicture), not taken in Grafana. Debian:
apt-get install prometheus python3-matplotlib.

usage: render.py --prometheus http://127.0.0.1:9090 --dashboard veil-dashboard.json
                 --out veil-dashboard.png [--range 600] [--step 5]
"""

import argparse
import json
import re
import time
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#ffb357"]
COL_W, ROW_H = 0.62, 0.42  # inches per grid column and row unit


def query(base, path, params):
    url = base.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{url}: {body}")
    return body["data"]["result"]


def expand(expr, rng):
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", f"{int(rng)}s")
    return re.sub(r"\$(namespace|pod)\b", ".*", expr)


def legend(fmt, metric):
    if not fmt:
        return ",".join(f"{k}={v}" for k, v in metric.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: short(metric.get(m.group(1), "")), fmt)


def short(v):
    # Sandbox and container ids are 64 hex digits: keep 12, as ctr does.
    return v[:12] if re.fullmatch(r"[0-9a-f]{64}", v) else v


def scale(unit, values):
    """Values in the unit a reader expects, and the axis label."""
    if unit == "bytes":
        return [v / 2**20 for v in values], "MiB"
    if unit == "Bps":
        return [v / 1024 for v in values], "KiB/s"
    if unit == "s":
        return [v * 1000 for v in values], "ms"
    if unit == "percentunit":
        return [v * 100 for v in values], "%"
    return values, ""


def style(ax, title):
    ax.set_facecolor(PANEL)
    ax.set_title(title, color=TEXT, fontsize=9, loc="left")
    ax.tick_params(colors=TEXT, labelsize=7)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.grid(color=GRID, linewidth=0.5)


def draw(args):
    dash = json.load(open(args.dashboard))
    end = time.time()
    start = end - args.range
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    fig = plt.figure(figsize=(24 * COL_W, bottom * ROW_H + 0.6), facecolor=BG)
    fig.text(0.01, 1 - 0.25 / (bottom * ROW_H + 0.6), dash["title"] + f" (last {int(args.range / 60)} min)",
             color=TEXT, fontsize=13, va="center")
    top = 0.5 / (bottom * ROW_H + 0.6)

    def rect(g, pad=0.004):
        x, y, w, h = g["x"] / 24, g["y"] / bottom, g["w"] / 24, g["h"] / bottom
        # Room on the left for the y axis' labels, below for the x axis'.
        left = 0.03 if g["w"] < 24 else 0.02
        return [x + left, 1 - top - (y + h) * (1 - top) + 0.03, w - left - pad, h * (1 - top) - 0.045]

    for p in dash["panels"]:
        g = p["gridPos"]
        if p["type"] == "row":
            fig.text(g["x"] / 24 + 0.005, 1 - top - (g["y"] + 0.5) / bottom * (1 - top), p["title"],
                     color=TEXT, fontsize=11, weight="bold", va="center")
            continue
        ax = fig.add_axes(rect(g))
        style(ax, p["title"])
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        if p["type"] == "stat":
            res = query(args.prometheus, "/api/v1/query", {"query": expand(p["targets"][0]["expr"], args.range), "time": end})
            v = float(res[0]["value"][1]) if res else float("nan")
            ax.text(0.5, 0.45, f"{v:g}", color=COLORS[0], fontsize=32, ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            continue
        if p["type"] == "bargauge":
            names, vals = [], []
            for t in p["targets"]:
                for r in query(args.prometheus, "/api/v1/query", {"query": expand(t["expr"], args.range), "time": end}):
                    v = float(r["value"][1])
                    if v == v:  # not NaN
                        names.append(legend(t.get("legendFormat", ""), r["metric"]))
                        vals.append(v)
            order = sorted(range(len(vals)), key=lambda i: vals[i])
            scaled, label = scale(unit, [vals[i] for i in order])
            ax.barh([names[i] for i in order], scaled, color=COLORS[2])
            ax.set_xlabel(label, color=TEXT, fontsize=7)
            continue
        n = 0
        for t in p["targets"]:
            for r in query(args.prometheus, "/api/v1/query_range",
                           {"query": expand(t["expr"], args.range), "start": start, "end": end, "step": args.step}):
                xs = [(float(ts) - end) / 60 for ts, _ in r["values"]]
                ys, label = scale(unit, [float(v) for _, v in r["values"]])
                ax.plot(xs, ys, color=COLORS[n % len(COLORS)], linewidth=1.2, label=legend(t.get("legendFormat", ""), r["metric"]))
                ax.set_ylabel(label, color=TEXT, fontsize=7)
                n += 1
        ax.set_xlim(-args.range / 60, 0)
        ax.set_xlabel("minutes", color=TEXT, fontsize=7)
        if n:
            ax.legend(fontsize=6, facecolor=PANEL, edgecolor=GRID, labelcolor=TEXT, loc="upper left", ncol=2)
        else:
            ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes)
    fig.savefig(args.out, dpi=100, facecolor=BG)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--range", type=float, default=600)
    ap.add_argument("--step", type=float, default=5)
    draw(ap.parse_args())


if __name__ == "__main__":
    main()
