#!/usr/bin/env python3
"""Validates ironlb's dashboards and monitoring manifests against their schemas, offline.

  validate.py dashboards [--npm DIR]   deploy/grafana/*.json against Grafana's dashboard schema
  validate.py manifests  [--kubectl K] deploy/ with the deploy/monitoring component, every
                                       object against its schema, and what ties them together
  validate.py rules                    every alert has a severity, a summary, a description and
                                       a runbook section in docs/runbooks.md, and the promtool
                                       tests make it fire in one case and stay quiet in another

Dashboards: the TypeScript types Grafana publishes as the npm package @grafana/schema (generated
from Grafana's CUE schema; 11.0.x is the release line whose dashboards are schemaVersion 39),
checked by the TypeScript compiler: every dashboard, panel, panel `options`, field
`custom` config and query is written out as an object literal that must satisfy its type
(`satisfies`), which rejects unknown fields, wrong types and values outside an enumeration.
Panel options come from the types Grafana exports for them (legend, tooltip, single stat, table);
Prometheus queries from DataQuery plus the Prometheus data source's query fields. String enums
are compared by their values, as JSON holds them. scripts/install-deps installs both packages
into $IRONLB_TOOLS_DIR/npm.

Manifests: `kubectl kustomize` (when there is a kubectl) builds deploy/ plus the component the
way a user's overlay does; without kubectl the component's files are read directly. Built-in
kinds are validated with kubernetes-validate (strict, Kubernetes 1.33); PodMonitor and
PrometheusRule against the Prometheus operator's schema for them, taken from the PyPI package
cloudcoil-models-prometheus-operator (models generated from the operator's CRDs, version
0.80.1), made strict (no unknown fields). Then: each PodMonitor selects the pods of the
StatefulSet or DaemonSet it is meant for and names a port they have, and the PrometheusRule
holds exactly the groups of deploy/prometheus/ironlb-rules.yaml.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("IRONLB_TOOLS_DIR", Path.home() / ".local/share/ironlb-tools"))
K8S_VERSION = "1.33.0"
OPERATOR_MODELS = "cloudcoil-models-prometheus-operator 0.80.1.0"


def fail(errors):
    for e in errors:
        print(f"  {e}", file=sys.stderr)
    return 1 if errors else 0


# ---------------------------------------------------------------------------------- dashboards

TS_PRELUDE = """\
import type {
  Dashboard, Panel, DataQuery, GraphFieldConfig, OptionsWithLegend, OptionsWithTooltip,
  SingleStatBaseOptions, BigValueColorMode, BigValueGraphMode, BigValueJustifyMode,
  BigValueTextMode, TableFieldOptions, TableFooterOptions, TableCellHeight,
} from "@grafana/schema";

// JSON holds a string enum's values: compare with those.
type Json<T> = T extends string ? `${T}`
  : T extends number | boolean | null | undefined ? T
  : T extends Array<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;

// The Prometheus data source's query (its dataquery schema) on top of DataQuery.
type PromQuery = DataQuery & {
  expr: string;
  instant?: boolean;
  range?: boolean;
  exemplar?: boolean;
  editorMode?: "code" | "builder";
  format?: "time_series" | "table" | "heatmap";
  legendFormat?: string;
  intervalFactor?: number;
  interval?: string;
};
// Options of the panels the dashboards use; Grafana fills in what is left out.
type TimeSeriesOptions = Partial<OptionsWithLegend & OptionsWithTooltip>;
type StatOptions = Partial<SingleStatBaseOptions & {
  colorMode: BigValueColorMode; graphMode: BigValueGraphMode;
  justifyMode: BigValueJustifyMode; textMode: BigValueTextMode;
}>;
type TableOptions = { showHeader?: boolean; cellHeight?: TableCellHeight; footer?: TableFooterOptions };
type PanelKinds = {
  timeseries: [TimeSeriesOptions, Partial<GraphFieldConfig>];
  stat: [StatOptions, Record<string, never>];
  table: [TableOptions, Partial<TableFieldOptions>];
};

// The checker must bite: each of these is wrong, and the compiler must say so.
// @ts-expect-error: no schemaVersion
export const wrong1 = { title: "x" } satisfies Json<Dashboard>;
// @ts-expect-error: a misspelt field
export const wrong2 = { schemaVersion: 39, titel: "x" } satisfies Json<Dashboard>;
// @ts-expect-error: a grid position as a string
export const wrong3 = { type: "stat", gridPos: { h: 4, w: "4", x: 0, y: 0 } } satisfies Json<Panel>;
// @ts-expect-error: not a legend placement
export const wrong4 = { legend: { calcs: [], displayMode: "list", placement: "top", showLegend: true } } satisfies Json<TimeSeriesOptions>;
"""


def dashboard_ts(files):
    """TypeScript that compiles only if every dashboard fits Grafana's types."""
    out = [TS_PRELUDE]
    for n, f in enumerate(files):
        d = json.loads(f.read_text())
        js = json.dumps
        out.append(f"\n// {f.relative_to(ROOT)}")
        out.append(f"export const d{n} = {js(d)} satisfies Json<Dashboard>;")
        for i, p in enumerate(d.get("panels", [])):
            kind = p.get("type")
            name = f"d{n}p{i}"
            out.append(f"export const {name} = {js(p)} satisfies Json<Panel>;")
            if kind not in ("timeseries", "stat", "table"):
                out.append(f"// @ts-expect-error: panel type {kind!r} is not one the checker knows")
                out.append(f'export const {name}k: keyof PanelKinds = {js(kind)};')
                continue
            out.append(f'export const {name}o = {js(p.get("options", {}))} '
                       f'satisfies Json<PanelKinds["{kind}"][0]>;')
            custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            out.append(f'export const {name}c = {js(custom)} '
                       f'satisfies Json<PanelKinds["{kind}"][1]>;')
            for j, t in enumerate(p.get("targets", [])):
                out.append(f"export const {name}t{j} = {js(t)} satisfies Json<PromQuery>;")
    return "\n".join(out) + "\n"


def validate_dashboards(npm_dir):
    files = sorted((ROOT / "deploy/grafana").glob("*.json"))
    schema = npm_dir / "node_modules/@grafana/schema"
    tsc = npm_dir / "node_modules/typescript/bin/tsc"
    if not files:
        return fail(["no dashboards in deploy/grafana"])
    if not schema.exists() or not tsc.exists():
        return fail([f"@grafana/schema or typescript missing under {npm_dir}: run scripts/install-deps"])
    version = json.loads((schema / "package.json").read_text())["version"]
    errors = []
    for f in files:
        d = json.loads(f.read_text())
        if d.get("schemaVersion") != 39:
            errors.append(f"{f.name}: schemaVersion {d.get('schemaVersion')}, not 39")
        if "__inputs" in d or "__requires" in d:
            errors.append(f"{f.name}: has __inputs/__requires (not provisionable as it is)")
        if not d.get("uid"):
            errors.append(f"{f.name}: no uid")
        titles = [p.get("title") for p in d.get("panels", [])]
        errors += [f"{f.name}: two panels are titled {t!r}" for t in set(titles)
                   if titles.count(t) > 1]
        ids = [p.get("id") for p in d.get("panels", [])]
        if len(set(ids)) != len(ids):
            errors.append(f"{f.name}: panel ids are not unique")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "check.ts").write_text(dashboard_ts(files))
        (tmp / "tsconfig.json").write_text(json.dumps({
            "compilerOptions": {
                "strict": True, "noEmit": True, "skipLibCheck": True, "target": "es2022",
                "module": "esnext", "moduleResolution": "bundler", "types": [],
                "paths": {"@grafana/schema": [str(schema / "dist/index.d.ts")]},
            },
            "files": ["check.ts"],
        }))
        r = subprocess.run(["node", str(tsc), "-p", str(tmp)], capture_output=True, text=True)
        if r.returncode != 0:
            lines = (r.stdout + r.stderr).strip().splitlines()
            errors.append(f"the TypeScript compiler refuses the dashboards ({len(lines)} lines):")
            errors += ["  " + l[:400] for l in lines[:60]]
    if not errors:
        print(f"dashboards: {len(files)} valid against @grafana/schema {version}")
    return fail(errors)


# ----------------------------------------------------------------------------------- manifests


def build(kubectl):
    """deploy/with-monitoring (the base plus the monitoring component), as objects."""
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy/with-monitoring")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"kubectl kustomize failed:\n{r.stderr}")
        return [d for d in yaml.safe_load_all(r.stdout) if d], "kubectl kustomize"
    # No kubectl: read the files the kustomizations name.
    objs = []
    for base, kind in (("deploy/base", "Kustomization"), ("deploy/monitoring", "Component")):
        k = yaml.safe_load((ROOT / base / "kustomization.yaml").read_text())
        if k.get("kind") != kind:
            raise SystemExit(f"{base}/kustomization.yaml is a {k.get('kind')}, not a {kind}")
        for res in k.get("resources", []):
            for d in yaml.safe_load_all((ROOT / base / res).read_text()):
                if d:
                    if k.get("namespace") and d.get("kind") not in ("Namespace", "CustomResourceDefinition",
                                                                   "ClusterRole", "ClusterRoleBinding"):
                        d.setdefault("metadata", {})["namespace"] = k["namespace"]
                    objs.append(d)
    return objs, "the kustomizations' files (no kubectl)"


def strict(node):
    """Closes every object schema that lists its properties (as kubernetes-validate --strict)."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
    return node


def operator_schemas():
    from cloudcoil.models.prometheus_operator import v1  # noqa: PLC0415

    out = {}
    for kind in ("PodMonitor", "PrometheusRule"):
        s = getattr(v1, kind).model_json_schema(by_alias=True, mode="validation")
        # Kubernetes' own metadata is validated by the API server, not the operator's schema.
        s["properties"]["metadata"] = {"type": "object"}
        out[kind] = strict(s)
    return out


def schema_errors(validator, obj):
    def leaf(e):
        # anyOf [X, null] and the like: follow the branch that is not "null", to the error
        # at the deepest place.
        ctx = [c for c in e.context if not (c.validator == "type" and c.validator_value == "null")]
        if not ctx:
            return e
        return max((leaf(c) for c in ctx), key=lambda c: len(c.absolute_path))

    out = []
    for e in validator.iter_errors(obj):
        e = leaf(e)
        out.append(f"{e.json_path}: {e.message[:300]}")
    return out


def pods_of(objs):
    """Pod label sets and container port names of the StatefulSets and DaemonSets."""
    out = {}
    for o in objs:
        if o["kind"] in ("StatefulSet", "DaemonSet"):
            t = o["spec"]["template"]
            ports = {p.get("name") for c in t["spec"]["containers"] for p in c.get("ports", [])}
            out[o["metadata"]["name"]] = (t["metadata"].get("labels", {}), ports,
                                          o["metadata"].get("namespace"))
    return out


def validate_manifests(kubectl):
    import jsonschema  # noqa: PLC0415
    import kubernetes_validate  # noqa: PLC0415

    objs, how = build(kubectl)
    schemas = {k: jsonschema.Draft202012Validator(s) for k, s in operator_schemas().items()}
    errors = []
    counts = {}
    for o in objs:
        kind, name = o.get("kind"), o.get("metadata", {}).get("name")
        counts[kind] = counts.get(kind, 0) + 1
        where = f"{kind}/{name}"
        if kind in schemas:
            errors += [f"{where}: {e}" for e in schema_errors(schemas[kind], o)]
            continue
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{where}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for it")
    for kind in ("PodMonitor", "PrometheusRule"):
        if kind not in counts:
            errors.append(f"the build has no {kind}")
    pods = pods_of(objs)
    for o in objs:
        if o["kind"] != "PodMonitor":
            continue
        name = o["metadata"]["name"]
        if name not in pods:
            errors.append(f"PodMonitor/{name}: no workload of that name")
            continue
        labels, ports, ns = pods[name]
        sel = o["spec"]["selector"].get("matchLabels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            errors.append(f"PodMonitor/{name}: selector {sel} does not match the pods' labels {labels}")
        if ns not in o["spec"].get("namespaceSelector", {}).get("matchNames", [ns]):
            errors.append(f"PodMonitor/{name}: does not look in namespace {ns}")
        if o["metadata"].get("namespace") != ns:
            errors.append(f"PodMonitor/{name}: in namespace {o['metadata'].get('namespace')}, not {ns}")
        for ep in o["spec"]["podMetricsEndpoints"]:
            if ep.get("port") not in ports:
                errors.append(f"PodMonitor/{name}: port {ep.get('port')!r} is not one of {sorted(ports)}")
            jobs = [r.get("replacement") for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"]
            if jobs != [name]:
                errors.append(f"PodMonitor/{name}: targets must get job={name}, not {jobs}")
    rules = yaml.safe_load((ROOT / "deploy/prometheus/ironlb-rules.yaml").read_text())["groups"]
    for o in objs:
        if o["kind"] == "PrometheusRule" and o["spec"]["groups"] != rules:
            errors.append(f"PrometheusRule/{o['metadata']['name']}: groups differ from "
                          "deploy/prometheus/ironlb-rules.yaml")
    if not errors:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        print(f"manifests: built with {how}; valid ({summary}); built-in kinds with "
              f"kubernetes-validate {K8S_VERSION} strict, PodMonitor and PrometheusRule with "
              f"{OPERATOR_MODELS}")
    return fail(errors)


# --------------------------------------------------------------------------------------- rules


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    out = ""
    for ch in heading.strip().lower():
        if ch.isalnum() or ch in "-_":
            out += ch
        elif ch == " ":
            out += "-"
    return out


def validate_rules():
    rules = [r for g in yaml.safe_load((ROOT / "deploy/prometheus/ironlb-rules.yaml").read_text())["groups"]
             for r in g["rules"] if "alert" in r]
    runbooks = ROOT / "docs/runbooks.md"
    anchors = {github_anchor(l.lstrip("#")) for l in runbooks.read_text().splitlines()
               if l.startswith("#")} if runbooks.exists() else set()
    fires, quiet = set(), set()
    for f in sorted((ROOT / "deploy/prometheus/tests").glob("*.yaml")):
        for t in yaml.safe_load(f.read_text()).get("tests", []):
            for a in t.get("alert_rule_test", []):
                (fires if a.get("exp_alerts") else quiet).add(a["alertname"])
    errors = []
    names = [r["alert"] for r in rules]
    if len(set(names)) != len(names):
        errors.append("an alert name is used twice")
    for r in rules:
        name = r["alert"]
        labels, ann = r.get("labels", {}), r.get("annotations", {})
        if labels.get("severity") not in ("critical", "warning"):
            errors.append(f"{name}: severity {labels.get('severity')!r}, not critical or warning")
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                errors.append(f"{name}: no annotations.{key}")
        url = ann.get("runbook_url", "")
        anchor = name.lower()
        if not url.endswith(f"docs/runbooks.md#{anchor}"):
            errors.append(f"{name}: runbook_url {url!r} does not point to docs/runbooks.md#{anchor}")
        if anchor not in anchors:
            errors.append(f"{name}: docs/runbooks.md has no section #{anchor}")
        if name not in fires:
            errors.append(f"{name}: no promtool test where it fires")
        if name not in quiet:
            errors.append(f"{name}: no promtool test where it stays quiet")
    if not errors:
        print(f"rules: {len(rules)} alerts, each with severity, summary, description, a runbook "
              "section, and promtool tests where it fires and where it does not")
    return fail(errors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dashboards")
    d.add_argument("--npm", type=Path, default=TOOLS / "npm",
                   help="where @grafana/schema and typescript are installed")
    m = sub.add_parser("manifests")
    m.add_argument("--kubectl", default=shutil.which("kubectl"),
                   help="kubectl to build the kustomization with (default: the one on PATH)")
    m.add_argument("--no-kubectl", action="store_true", help="read the files directly")
    sub.add_parser("rules")
    args = ap.parse_args()
    if args.what == "dashboards":
        return validate_dashboards(args.npm)
    if args.what == "rules":
        return validate_rules()
    return validate_manifests(None if args.no_kubectl else args.kubectl)


if __name__ == "__main__":
    sys.exit(main())
