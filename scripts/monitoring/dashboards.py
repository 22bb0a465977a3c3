"""ironlb's Grafana dashboards, as Python data (scripts/monitoring/gen.py writes them out).

Every dashboard is provisionable as it is (no `__inputs`): its data source is the `datasource`
variable, and every query filters on `cluster=~"$cluster"` plus `node=~"$node"` (speaker
metrics and the metrics that name a node) or `pod=~"$member"` (controller members' metrics on
the overview). The variables' "All" value is `.*`, which also matches series without the label,
so the dashboards work on a Prometheus whose `cluster` is only an external label.
"""

DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
TAG = "ironlb"

# Label matchers the queries use.
C = 'cluster=~"$cluster"'
CTL = 'job="ironlb-controller",' + C
SPK = 'job="ironlb-speaker",' + C
MEMBER = CTL + ',pod=~"$member"'
NODE = SPK + ',node=~"$node"'


# ----------------------------------------------------------------------------------- variables


def datasource_var():
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_var(name, label, query, multi):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {"selected": True, "text": ["All"] if multi else "All",
                    "value": ["$__all"] if multi else "$__all"},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def cluster_var():
    return query_var("cluster", "Cluster", "label_values(ironlb_raft_term, cluster)", False)


def node_var():
    return query_var("node", "Node",
                     'label_values(ironlb_lease_remaining_seconds{cluster=~"$cluster"}, node)', True)


def member_var():
    return query_var("member", "Member",
                     'label_values(ironlb_raft_term{cluster=~"$cluster"}, pod)', True)


# -------------------------------------------------------------------------------------- panels


def target(expr, legend="__auto", instant=False, ref="A"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}
    if instant:
        t.update({"format": "table", "instant": True, "range": False})
    else:
        t.update({"range": True})
    return t


def _targets(queries, instant=False):
    out = []
    for i, q in enumerate(queries):
        expr, legend = q if isinstance(q, tuple) else (q, "__auto")
        out.append(target(expr, legend, instant, chr(ord("A") + i)))
    return out


def _base(kind, title, description, queries, w, h, instant=False):
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "targets": _targets(queries, instant),
    }


def timeseries(title, description, queries, unit="short", w=12, h=8, stack=False, min0=True):
    p = _base("timeseries", title, description, queries, w, h)
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10 if stack else 0,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
    }
    defaults = {"unit": unit, "custom": custom}
    if min0:
        defaults["min"] = 0
    p["fieldConfig"] = {"defaults": defaults, "overrides": []}
    p["options"] = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return p


def stat(title, description, queries, unit="short", w=4, h=4, mappings=None, thresholds=None,
         text_mode="auto"):
    p = _base("stat", title, description, queries, w, h)
    steps = thresholds or [{"color": "green", "value": None}]
    p["fieldConfig"] = {
        "defaults": {
            "unit": unit,
            "mappings": mappings or [],
            "thresholds": {"mode": "absolute", "steps": steps},
            "color": {"mode": "thresholds"},
        },
        "overrides": [],
    }
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
    }
    return p


def table(title, description, queries, columns, w=12, h=8, mappings=None, hide=("Time",)):
    """An instant table; `columns` maps the labels to show to their headers, in order; the
    fields in `hide` are left out."""
    p = _base("table", title, description, queries, w, h, instant=True)
    p["fieldConfig"] = {
        "defaults": {"mappings": mappings or [], "custom": {"align": "auto"}},
        "overrides": [],
    }
    p["options"] = {"showHeader": True, "cellHeight": "sm",
                    "footer": {"show": False, "reducer": ["sum"], "countRows": False}}
    names = list(columns)
    p["transformations"] = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {n: True for n in hide},
                "indexByName": {n: i for i, n in enumerate(names)},
                "renameByName": dict(columns),
            },
        },
    ]
    return p


def value_map(pairs):
    """Value mappings: {value: (text, color)}."""
    return [{
        "type": "value",
        "options": {str(v): {"text": t, "color": c, "index": i}
                    for i, (v, (t, c)) in enumerate(pairs.items())},
    }]


def red_above(n):
    return [{"color": "green", "value": None}, {"color": "red", "value": n}]


def layout(panels):
    """Places the panels left to right, top to bottom, in Grafana's 24-column grid."""
    x = y = row_h = 0
    for i, p in enumerate(panels):
        g = p["gridPos"]
        if x + g["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        g["x"], g["y"] = x, y
        x += g["w"]
        row_h = max(row_h, g["h"])
        p["id"] = i + 1
    return panels


def dashboard(uid, title, description, variables, panels):
    return {
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{
            "title": "ironlb",
            "type": "dashboards",
            "tags": [TAG],
            "asDropdown": True,
            "includeVars": True,
            "keepTime": True,
            "icon": "external link",
            "targetBlank": False,
            "tooltip": "",
            "url": "",
        }],
        "liveNow": False,
        "panels": layout(panels),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": variables},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


def hq(q, metric, sel, by=""):
    """histogram_quantile of a histogram's rate, grouped by `by` (plus le)."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))"


# ---------------------------------------------------------------------------------- dashboards


def overview():
    up = f'up{{{MEMBER}}}'
    panels = [
        stat("Members up", "Controller members Prometheus scrapes successfully, of all targets.",
             [(f"sum({up})", "up"), (f"count({up})", "targets")]),
        stat("Leader", "The member that says it leads (ironlb_raft_is_leader).",
             [(f"max by (pod) (ironlb_raft_is_leader{{{MEMBER}}} == 1)", "{{pod}}")],
             text_mode="name"),
        stat("Term", "The highest Raft term a member reports.",
             [f"max(ironlb_raft_term{{{MEMBER}}})"]),
        stat("Members and voters", "Raft members (voters and learners) and voters.",
             [(f"max(ironlb_raft_members{{{MEMBER}}})", "members"),
              (f"max(ironlb_raft_voters{{{MEMBER}}})", "voters")]),
        stat("Speakers", "Speakers the leader has a session with, and fenced ones.",
             [(f"max by (state) (ironlb_speakers{{{MEMBER}}})", "{{state}}")]),
        stat("Quorum ack age", "On the leader: time since a majority last acknowledged it "
             "(IronlbNoQuorum above 2 s).",
             [f"max(ironlb_raft_quorum_ack_age_seconds{{{MEMBER}}})"], unit="s",
             thresholds=red_above(2)),
        timeseries("Commit and applied index", "Each member's committed and applied log index.",
                   [(f"ironlb_raft_commit_index{{{MEMBER}}}", "{{pod}} commit"),
                    (f"ironlb_raft_applied_index{{{MEMBER}}}", "{{pod}} applied")],
                   min0=False),
        timeseries("Replication lag", "On the leader: log entries each follower is behind "
                   "(IronlbMemberLagging above 1000).",
                   [(f"max by (member) (ironlb_raft_replication_lag_entries{{{MEMBER}}})",
                     "member {{member}}")]),
        timeseries("Allocations per second", "Allocations applied, and failed ones by reason.",
                   [(f"sum(rate(ironlb_allocation_duration_seconds_count{{{MEMBER}}}"
                     "[$__rate_interval]))", "allocations"),
                    (f"sum by (reason) (rate(ironlb_allocation_failures_total{{{MEMBER}}}"
                     "[$__rate_interval]))", "failed: {{reason}}")], unit="ops"),
        timeseries("Allocation latency", "From receiving an allocation to its being applied.",
                   [(hq(0.5, "ironlb_allocation_duration_seconds", MEMBER), "p50"),
                    (hq(0.99, "ironlb_allocation_duration_seconds", MEMBER), "p99")], unit="s"),
        timeseries("Pool usage", "Addresses in use / total, per pool and family "
                   "(IronlbPoolNearlyFull above 90 %).",
                   [(f'max by (pool, family) (ironlb_allocator_addresses{{{MEMBER},state="in_use"}})'
                     f' / max by (pool, family) (ironlb_allocator_addresses{{{MEMBER},state="total"}})',
                     "{{pool}} {{family}}")], unit="percentunit"),
        timeseries("Addresses in use per family", "Addresses in use and available, all pools.",
                   [(f'sum by (family) (max by (pool, family) (ironlb_allocator_addresses'
                     f'{{{MEMBER},state="in_use"}}))', "{{family}} in use"),
                    (f'sum by (family) (max by (pool, family) (ironlb_allocator_addresses'
                     f'{{{MEMBER},state="available"}}))', "{{family}} available")]),
        timeseries("Speakers connected and fenced", "The leader's count of speaker sessions.",
                   [(f"max by (state) (ironlb_speakers{{{MEMBER}}})", "{{state}}")]),
        timeseries("Scrape health per member", "1 while Prometheus scrapes the member.",
                   [(up, "{{pod}}")]),
    ]
    return dashboard("ironlb-overview", "ironlb / Overview",
                     "The Raft controllers and the allocator.",
                     [datasource_var(), cluster_var(), member_var()], panels)


def layer2():
    panels = [
        table("Owner per address", "Which node answers for each Layer 2 address "
              "(ironlb_l2_owner_info on the leader).",
              [f'max by (address, service, node) (ironlb_l2_owner_info{{{CTL},node=~"$node"}})'],
              {"address": "Address", "service": "Service", "node": "Node"}, w=12, h=8,
              hide=("Time", "Value")),
        stat("Unowned addresses", "Allocated Layer 2 addresses no node answers for "
             "(IronlbAddressUnowned).",
             [f"max(ironlb_l2_unowned_addresses{{{CTL}}})"], w=4, h=8, thresholds=red_above(1)),
        stat("Speakers connected to the leader", "Speakers (of the selected nodes) with a "
             "session to the Raft leader.",
             [f"sum(ironlb_speaker_leader_connected{{{NODE}}})"], w=4, h=8),
        stat("Fences in range", "Leases the selected speakers let run out in the time range.",
             [f"sum(increase(ironlb_speaker_fences_total{{{NODE}}}[$__range]))"], w=4, h=8,
             thresholds=red_above(1)),
        timeseries("Owned addresses per node", "Addresses each speaker answers for.",
                   [(f"sum by (node) (ironlb_l2_owned_addresses{{{NODE}}})", "{{node}}")],
                   stack=True),
        timeseries("Failovers and owner changes", "Owner changes the leader committed, and "
                   "those because the owner died or drained.",
                   [(f"sum(increase(ironlb_failovers_total{{{CTL}}}[$__rate_interval]))",
                     "failovers"),
                    (f"sum(increase(ironlb_owner_changes_total{{{CTL}}}[$__rate_interval]))",
                     "owner changes")]),
        timeseries("Failover duration", "From a dead owner's last heartbeat to the new owner "
                   "acknowledging the address.",
                   [(hq(0.5, "ironlb_failover_duration_seconds", CTL), "p50"),
                    (hq(0.99, "ironlb_failover_duration_seconds", CTL), "p99")], unit="s"),
        timeseries("Fences", "Times each speaker let its lease run out and stopped answering.",
                   [(f"sum by (node) (increase(ironlb_speaker_fences_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}}")]),
        timeseries("Lease remaining", "Time left on each speaker's lease (0: fenced), and the "
                   "lease length granted.",
                   [(f"ironlb_lease_remaining_seconds{{{NODE}}}", "{{node}}"),
                    (f"max(ironlb_lease_duration_seconds{{{NODE}}})", "lease length")],
                   unit="s"),
        timeseries("Heartbeat RTT p99", "Lease renewal latency: heartbeat sent to lease "
                   "received, per node.",
                   [(hq(0.99, "ironlb_speaker_heartbeat_rtt_seconds", NODE, "node"), "{{node}}")],
                   unit="s"),
        timeseries("ARP requests and replies", "ARP requests received and replies sent, per "
                   "second.",
                   [(f"sum by (node) (rate(ironlb_arp_requests_received_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}} requests"),
                    (f"sum by (node) (rate(ironlb_arp_replies_sent_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}} replies")], unit="reqps"),
        timeseries("NDP solicitations and advertisements", "Neighbor Solicitations received "
                   "and Neighbor Advertisements sent, per second.",
                   [(f"sum by (node) (rate(ironlb_ndp_solicitations_received_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}} solicitations"),
                    (f"sum by (node) (rate(ironlb_ndp_advertisements_sent_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}} advertisements")], unit="reqps"),
        timeseries("Gratuitous announcements", "Gratuitous ARP and unsolicited NA sent on "
                   "taking an address, per second.",
                   [(f"sum by (node) (rate(ironlb_gratuitous_announcements_sent_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}}")], unit="pps"),
        timeseries("Unowned addresses over time", "Allocated Layer 2 addresses no node answers "
                   "for.",
                   [(f"max(ironlb_l2_unowned_addresses{{{CTL}}})", "unowned")]),
    ]
    return dashboard("ironlb-layer2", "ironlb / Layer 2",
                     "Layer 2 ownership: owners, leases, failovers, ARP and NDP.",
                     [datasource_var(), cluster_var(), node_var()], panels)


def bgp():
    up_map = value_map({0: ("Down", "red"), 1: ("Established", "green")})
    panels = [
        table("Sessions", "Every speaker's session with every peer.",
              [f"max by (node, peer) (ironlb_bgp_session_up{{{NODE}}})"],
              {"node": "Node", "peer": "Peer", "Value": "State"}, w=12, h=8, mappings=up_map),
        table("Announcing nodes per address", "Nodes the leader tells to announce each "
              "address over BGP.",
              [f"max by (address, service) (ironlb_bgp_announcing_nodes{{{CTL}}})"],
              {"address": "Address", "service": "Service", "Value": "Nodes"}, w=12, h=8),
        timeseries("Session up per peer and node", "1 while the session is established.",
                   [(f"ironlb_bgp_session_up{{{NODE}}}", "{{node}} → {{peer}}")]),
        timeseries("Prefixes announced", "Prefixes each speaker announces to each peer.",
                   [(f"sum by (node, peer) (ironlb_bgp_announced_prefixes{{{NODE}}})",
                     "{{node}} → {{peer}}")]),
        timeseries("Updates sent", "UPDATE messages sent per second.",
                   [(f"sum by (node, peer) (rate(ironlb_bgp_updates_sent_total{{{NODE}}}"
                     "[$__rate_interval]))", "{{node}} → {{peer}}")], unit="ops"),
        timeseries("Notifications", "NOTIFICATION messages sent and received, by code (0 for "
                   "a session that has had none).",
                   [(f"sum by (node, peer, direction, code) (increase("
                     f"ironlb_bgp_notifications_total{{{NODE}}}[$__rate_interval]))"
                     f" or on (node, peer) 0 * max by (node, peer) (ironlb_bgp_session_up{{{NODE}}})",
                     "{{node}} → {{peer}} {{direction}} {{code}}")]),
        timeseries("Session transitions", "Session state changes (IronlbBGPSessionFlapping "
                   "above 4 in 15 minutes).",
                   [(f"sum by (node, peer) (increase(ironlb_bgp_session_transitions_total"
                     f"{{{NODE}}}[$__rate_interval]))", "{{node}} → {{peer}}")]),
        timeseries("Announcing nodes", "Nodes announcing each address (ECMP width).",
                   [(f"max by (address) (ironlb_bgp_announcing_nodes{{{CTL}}})",
                     "{{address}}")]),
    ]
    return dashboard("ironlb-bgp", "ironlb / BGP",
                     "BGP sessions, announcements and the nodes announcing each address.",
                     [datasource_var(), cluster_var(), node_var()], panels)


def kubernetes():
    leader = f"ironlb_raft_is_leader{{{CTL}}} == 1"
    panels = [
        stat("Configuration valid", "Whether the leader accepts the configuration objects "
             "(IronlbConfigInvalid).",
             [f"max(ironlb_config_valid{{{CTL}}} and {leader})"], w=6,
             mappings=value_map({0: ("Invalid", "red"), 1: ("Valid", "green")})),
        stat("Configuration stale", "1 while an older configuration stays in force because "
             "the objects are invalid.",
             [f"max(ironlb_config_stale{{{CTL}}} and {leader})"], w=6,
             mappings=value_map({0: ("Current", "green"), 1: ("Stale", "orange")})),
        stat("Configuration revision", "The revision of the configuration in force.",
             [f"max(ironlb_config_revision{{{CTL}}})"], w=6),
        stat("Status write failures in range", "Writes to the Kubernetes API that failed.",
             [f"sum(increase(ironlb_k8s_status_write_failures_total{{{CTL}}}[$__range]))"],
             w=6, thresholds=red_above(1)),
        timeseries("Reconciles by result", "Services reconciled per second, by result (\"none\" "
                   "while no Service has been reconciled).",
                   [(f"sum by (result) (rate(ironlb_k8s_reconciles_total{{{CTL}}}"
                     "[$__rate_interval]))"
                     f' or on () label_replace(0 * max(ironlb_config_revision{{{CTL}}}), "result",'
                     ' "none", "", "")', "{{result}}")], unit="ops"),
        timeseries("Status writes and failures", "Writes of Service, pool and configuration "
                   "status to the Kubernetes API, per second.",
                   [(f"sum(rate(ironlb_k8s_status_writes_total{{{CTL}}}[$__rate_interval]))",
                     "writes"),
                    (f"sum(rate(ironlb_k8s_status_write_failures_total{{{CTL}}}"
                     "[$__rate_interval]))", "failures")], unit="ops"),
        timeseries("Configuration revision per member", "The revision in force, per member.",
                   [(f"ironlb_config_revision{{{CTL}}}", "{{pod}}")], min0=False),
        timeseries("Configuration valid and stale", "On the leader.",
                   [(f"max(ironlb_config_valid{{{CTL}}} and {leader})", "valid"),
                    (f"max(ironlb_config_stale{{{CTL}}} and {leader})", "stale")]),
    ]
    return dashboard("ironlb-kubernetes", "ironlb / Kubernetes",
                     "The Kubernetes reconciler on the Raft leader: reconciles, status writes, "
                     "configuration.",
                     [datasource_var(), cluster_var()], panels)


DASHBOARDS = {
    "ironlb-overview.json": overview,
    "ironlb-layer2.json": layer2,
    "ironlb-bgp.json": bgp,
    "ironlb-kubernetes.json": kubernetes,
}
