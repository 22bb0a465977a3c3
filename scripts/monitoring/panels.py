#!/usr/bin/env python3
"""Evaluates every panel of ironlb's Grafana dashboards against a Prometheus, and draws them.

  panels.py --prometheus http://127.0.0.1:9090 [--dashboards deploy/grafana]
            [--vars cluster=lab node='node-a|node-b' ...] [--range 10m | --start T --end T]
            [--allow-empty 'ironlb-bgp/Notifications' ...] [--out DIR] [--png]
  panels.py --check-syntax [--dashboards deploy/grafana]

For every panel of every dashboard, the variables are substituted as Grafana would ($cluster,
$node, $member: the value given with --vars, or `.*` for "All"; $__interval and
$__rate_interval from the range and the scrape interval; $__range), each target is evaluated
through Prometheus's HTTP API (/api/v1/query_range; /api/v1/query for instant table queries),
and one JSON line per dashboard says how many series each panel and target returned. The exit
status is 1 when a panel returned no data (every one is named on stderr) unless it matches an
--allow-empty pattern (fnmatch on "UID/Panel title"), or when a query failed; 2 when Prometheus
cannot be reached.

--out DIR keeps every query's result (DIR/UID.json); with --png, DIR/UID.png is a picture of
each dashboard rendered from Prometheus's query results with matplotlib: the panels at their
grid positions, lines for time series, the last value for stats, a small table for tables.

--check-syntax needs no Prometheus: it writes every target, its variables substituted, as a
recording rule and has `promtool check rules` parse them.
"""

import argparse
import fnmatch
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(text):
    """'90s', '10m', '1h30m' -> seconds."""
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return total


def duration(s):
    """Seconds -> a Prometheus duration ('1m', '15s', '250ms')."""
    if s >= 60 and s % 60 == 0:
        return f"{int(s // 60)}m"
    if s >= 1 and s == int(s):
        return f"{int(s)}s"
    return f"{max(1, int(s * 1000))}ms"


def timestamp(text):
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Vars:
    """Grafana's variables as this run substitutes them."""

    def __init__(self, given, start, end, step, scrape):
        self.values = dict(given)
        rng = end - start
        self.builtin = {
            "__interval": duration(step),
            "__interval_ms": str(int(step * 1000)),
            "__rate_interval": duration(max(step + scrape, 4 * scrape)),
            "__range": duration(rng),
            "__range_s": str(int(rng)),
            "__range_ms": str(int(rng * 1000)),
        }
        self.builtin.update({k: v for k, v in given.items() if k.startswith("__")})

    def sub(self, expr):
        def one(m):
            name = m.group(1) or m.group(2) or m.group(3)
            if name in self.builtin:
                return self.builtin[name]
            return self.values.get(name, ".*")
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)


def panels_of(dash):
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def load(directory):
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise SystemExit(f"no dashboards in {directory}")
    return [(f, json.loads(f.read_text())) for f in files]


# ---------------------------------------------------------------------------------- Prometheus


def api(base, path, params):
    url = base.rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            return None, f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    return body["data"], None


def evaluate(base, target, v, start, end, step):
    expr = v.sub(target["expr"])
    if target.get("instant"):
        data, err = api(base, "/api/v1/query", {"query": expr, "time": end})
    else:
        data, err = api(base, "/api/v1/query_range",
                        {"query": expr, "start": start, "end": end, "step": step})
    series = []
    if data:
        for s in data["result"]:
            if "values" in s:
                pts = [(float(t), float(x)) for t, x in s["values"]]
            else:
                pts = [(float(s["value"][0]), float(s["value"][1]))]
            series.append({"metric": s["metric"], "points": pts})
    return {"refId": target.get("refId"), "expr": expr, "legend": target.get("legendFormat", ""),
            "series": series, "error": err}


def legend(fmt, metric):
    if not fmt or fmt == "__auto":
        labels = {k: v for k, v in metric.items() if k != "__name__"}
        name = metric.get("__name__", "")
        return name + ("{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                       if labels or not name else "")
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt)


# ------------------------------------------------------------------------------------- drawing


def mapped(panel, value):
    """The text a value mapping gives a value, or the value formatted."""
    for m in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        if m.get("type") == "value":
            key = str(int(value)) if not math.isnan(value) and value == int(value) else str(value)
            hit = m["options"].get(key)
            if hit and hit.get("text"):
                return hit["text"]
    if math.isnan(value):
        return "NaN"
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    return f"{value:.4g}"


def last(points):
    for _, x in reversed(points):
        if not math.isnan(x):
            return x
    return float("nan")


def draw(dash, results, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.dates as mdates  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = list(panels_of(dash))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    unit_h = 0.42  # inches per grid row
    fig = plt.figure(figsize=(20, rows * unit_h + 0.8))
    fig.suptitle(f'{dash["title"]}   ({results["window"]})', fontsize=14, x=0.01, ha="left")
    top = 1 - 0.8 / (rows * unit_h + 0.8)
    for p in panels:
        g = p["gridPos"]
        box = [g["x"] / 24 + 0.03, top - (g["y"] + g["h"]) / rows * top + 0.03,
               g["w"] / 24 - 0.04, g["h"] / rows * top - 0.06]
        ax = fig.add_axes(box)
        res = results["panels"][str(p["id"])]["targets"]
        n = sum(len(t["series"]) for t in res)
        ax.set_title(p["title"] + ("" if n else "  (no data)"), fontsize=9, loc="left",
                     color="black" if n else "red")
        if p["type"] == "timeseries":
            for t in res:
                for s in t["series"]:
                    xs = [datetime.fromtimestamp(x, tz=timezone.utc) for x, _ in s["points"]]
                    ax.plot(xs, [y for _, y in s["points"]], linewidth=1,
                            label=legend(t["legend"], s["metric"])[:40])
            ax.xaxis.set_major_formatter(
                mdates.DateFormatter("%H:%M:%S" if results["seconds"] <= 3600 else "%H:%M"))
            ax.tick_params(labelsize=7)
            if n and n <= 8:
                ax.legend(fontsize=6, loc="upper left", frameon=False)
            if p.get("fieldConfig", {}).get("defaults", {}).get("unit") == "percentunit":
                ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        elif p["type"] == "stat":
            ax.axis("off")
            vals = [(legend(t["legend"], s["metric"]), last(s["points"]))
                    for t in res for s in t["series"]]
            text_mode = p.get("options", {}).get("textMode")
            lines = [name if text_mode == "name" else
                     (f"{mapped(p, v)}  {name}" if len(vals) > 1 else mapped(p, v))
                     for name, v in vals[:6]]
            ax.text(0.5, 0.45, "\n".join(lines) or "-", ha="center", va="center",
                    fontsize=16 if len(lines) <= 1 else 10, transform=ax.transAxes)
        elif p["type"] == "table":
            ax.axis("off")
            org = next((x["options"] for x in p.get("transformations", [])
                        if x["id"] == "organize"), {})
            hidden = {k for k, v in org.get("excludeByName", {}).items() if v}
            names = org.get("renameByName", {})
            cols = [c for c in org.get("indexByName", {}) if c not in hidden]
            rows_ = []
            for t in res:
                for s in t["series"]:
                    row = []
                    for c in cols:
                        row.append(mapped(p, last(s["points"])) if c == "Value"
                                   else s["metric"].get(c, ""))
                    rows_.append(row)
            if rows_:
                tbl = ax.table(cellText=rows_[:12], colLabels=[names.get(c, c) for c in cols],
                               loc="upper center", cellLoc="left")
                tbl.auto_set_font_size(False)
                tbl.set_fontsize(7)
                tbl.scale(1, 1.1)
                if len(rows_) > 12:
                    ax.text(0, 0, f"... {len(rows_) - 12} more", fontsize=7,
                            transform=ax.transAxes)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------------------- main


def need_matplotlib():
    """matplotlib, or this script again under the tools' Python (scripts/install-deps) that has it."""
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        tools = Path(os.environ.get("IRONLB_TOOLS_DIR", Path.home() / ".local/share/ironlb-tools"))
        py = tools / "bin/python3"
        if py.exists() and Path(sys.prefix).resolve() != tools.resolve() \
                and not os.environ.get("IRONLB_PANELS_REEXEC"):
            os.environ["IRONLB_PANELS_REEXEC"] = "1"
            os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])
        raise SystemExit("--png needs matplotlib: run scripts/install-deps (it installs it into "
                         f"{tools}) and use {py}")


def check_syntax(dashboards, promtool):
    """Every target, variables substituted, parsed by promtool as a recording rule."""
    v = Vars({}, 0, 3600, 15, 15)
    rules = []
    for f, d in dashboards:
        for p in panels_of(d):
            for t in p.get("targets", []):
                rules.append({"record": f"ironlb_dashboard:{d['uid'].replace('-', '_')}:"
                                        f"{p['id']}{t['refId']}".lower(),
                              "expr": v.sub(t["expr"])})
        for var in d.get("templating", {}).get("list", []):
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            m = re.match(r"label_values\((.*),\s*\w+\)$", q or "")
            if var.get("type") == "query" and not m:
                print(f"{f.name}: variable {var['name']}: not label_values(SELECTOR, LABEL): {q!r}",
                      file=sys.stderr)
                return 1
            if m:
                rules.append({"record": f"ironlb_dashboard:var:{var['name']}",
                              "expr": v.sub(m.group(1))})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as tmp:
        json.dump({"groups": [{"name": "dashboards", "rules": rules}]}, tmp)
        tmp.flush()
        r = subprocess.run([promtool, "check", "rules", tmp.name], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr, file=sys.stderr)
        return 1
    print(f"dashboards: {len(rules)} queries parse (promtool check rules)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--prometheus", help="Prometheus's base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboards", default=str(ROOT / "deploy/grafana"))
    ap.add_argument("--vars", nargs="*", default=[], metavar="NAME=VALUE",
                    help="variable values (a regex for multi-value ones); unset ones are .*")
    ap.add_argument("--range", type=seconds, default=600.0, help="window ending now (10m)")
    ap.add_argument("--start", type=timestamp, help="RFC 3339 or Unix time")
    ap.add_argument("--end", type=timestamp, help="RFC 3339 or Unix time (default: now)")
    ap.add_argument("--step", type=seconds, help="query resolution ($__interval): range/200, "
                    "at least 1s")
    ap.add_argument("--scrape-interval", type=seconds, default=15.0,
                    help="for $__rate_interval, as Grafana's data source setting (15s)")
    ap.add_argument("--allow-empty", nargs="*", default=[], metavar="UID/TITLE",
                    help="panels that may return no data (fnmatch patterns)")
    ap.add_argument("--out", type=Path, help="write every query's result (and PNGs) here")
    ap.add_argument("--png", action="store_true", help="draw each dashboard into --out")
    ap.add_argument("--check-syntax", action="store_true",
                    help="only parse every query with promtool (no Prometheus needed)")
    ap.add_argument("--promtool", default="promtool")
    args = ap.parse_args()
    dashboards = load(args.dashboards)
    if args.check_syntax:
        return check_syntax(dashboards, args.promtool)
    if not args.prometheus:
        ap.error("--prometheus is needed (or --check-syntax)")
    if args.png and not args.out:
        ap.error("--png needs --out")
    if args.png:
        need_matplotlib()
    given = {}
    for kv in args.vars:
        k, sep, val = kv.partition("=")
        if not sep:
            ap.error(f"--vars takes NAME=VALUE, not {kv!r}")
        given[k] = val
    end = args.end or time.time()
    start = args.start or end - args.range
    if start >= end:
        ap.error("--start must be before --end")
    step = args.step or max(1.0, round((end - start) / 200))
    info, err = api(args.prometheus, "/api/v1/status/buildinfo", {})
    if err:
        print(f"cannot reach Prometheus at {args.prometheus}: {err}", file=sys.stderr)
        return 2
    v = Vars(given, start, end, step, args.scrape_interval)
    window = (f"{datetime.fromtimestamp(start, tz=timezone.utc):%Y-%m-%d %H:%M:%S} to "
              f"{datetime.fromtimestamp(end, tz=timezone.utc):%H:%M:%S} UTC, step {duration(step)}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    empty, failed = [], []
    for f, d in dashboards:
        results = {"window": window, "seconds": end - start, "panels": {}}
        line = {"dashboard": d["uid"], "title": d["title"], "panels": []}
        for p in panels_of(d):
            res = [evaluate(args.prometheus, t, v, start, end, step) for t in p.get("targets", [])]
            results["panels"][str(p["id"])] = {"title": p["title"], "targets": res}
            n = sum(len(t["series"]) for t in res)
            line["panels"].append({"title": p["title"], "type": p["type"], "series": n,
                                   "targets": [{"refId": t["refId"], "series": len(t["series"]),
                                                **({"error": t["error"]} if t["error"] else {})}
                                               for t in res]})
            key = f'{d["uid"]}/{p["title"]}'
            failed += [f"{key} ({t['refId']}): {t['error']}" for t in res if t["error"]]
            if n == 0 and not any(fnmatch.fnmatch(key, pat) for pat in args.allow_empty):
                empty.append(key)
        print(json.dumps(line), flush=True)
        if args.out:
            (args.out / f'{d["uid"]}.json').write_text(json.dumps(results, indent=1) + "\n")
            if args.png:
                draw(d, results, args.out / f'{d["uid"]}.png')
    for e in failed:
        print(f"query failed: {e}", file=sys.stderr)
    for e in empty:
        print(f"no data: {e}", file=sys.stderr)
    return 1 if empty or failed else 0


if __name__ == "__main__":
    sys.exit(main())
