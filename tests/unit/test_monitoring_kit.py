"""The compose `monitoring` profile's kit (deploy/), checked statically as the compose file is: no
Docker engine, Prometheus or Grafana runs here.

Every file parses. Every PromQL expression -- the alert rules' and the dashboard's -- is parsed by
`promql-parser` (Python bindings of GreptimeDB's Rust port of the Prometheus parser; it rejects bad
syntax and type errors, e.g. a range vector where an instant vector is due), then walked: every
metric it names is one custsync exposes (read from ``PrometheusMetrics(new_registry())``, not from
a copied list) or Prometheus's own ``up``; every label in a selector, ``by``/``without``,
``on``/``ignoring`` or ``group_left`` is one that metric carries at that point of the expression;
``rate`` and ``increase`` take counters, ``delta`` and ``deriv`` gauges; ``histogram_quantile``
keeps ``le``; the two sides of a binary operator can match; and the labels a legend or an alert's
text names are in what the expression returns. Prometheus scrapes the compose services on the ports
they really serve, and the provisioning files point at paths the compose mounts provide.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import promql_parser as pq
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from adapters.prometheus import PrometheusMetrics, new_registry
from entrypoints.cli import main as cli
from entrypoints.http.metrics import metrics_route

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_YML = DEPLOY / "prometheus/prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus/alerts.yml"
DATASOURCES = DEPLOY / "grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana/provisioning/dashboards/custsync.yml"
DASHBOARD = DEPLOY / "grafana/dashboards/custsync.json"
YAML_FILES = [PROMETHEUS_YML, ALERTS_YML, DATASOURCES, DASHBOARD_PROVIDERS]

PROMETHEUS_PORT = 9090  # prom/prometheus listens there unless --web.listen-address says otherwise
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"  # Grafana's default paths.provisioning
TARGET_LABELS = frozenset({"job", "instance"})  # Prometheus adds them to every series it scrapes
# Grafana's interval variables, as Grafana replaces them before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


# -- what custsync exposes ------------------------------------------------------------------------

# What the text exposition shows of each kind of family: (suffix, counter or gauge, extra labels).
SERIES_OF = {
    "counter": (("_total", "counter", ()), ("_created", "gauge", ())),
    "gauge": (("", "gauge", ()),),
    "histogram": (
        ("_bucket", "counter", ("le",)),
        ("_sum", "counter", ()),
        ("_count", "counter", ()),
        ("_created", "gauge", ()),
    ),
    "summary": (("", "gauge", ("quantile",)), ("_sum", "counter", ()), ("_count", "counter", ()), ("_created", "gauge", ())),
    "info": (("_info", "gauge", ()),),
}


class Series(NamedTuple):
    kind: str  # counter (only ever grows: rate() it) or gauge
    labels: frozenset[str]
    family: str


def exposed_series() -> dict[str, Series]:
    """Every series name /metrics can show (api and worker alike): its kind, labels and family.

    A labelled metric no code has touched yet has no samples, so names come from each family's
    name and type, and labels from the metric's declaration."""
    metrics = PrometheusMetrics(new_registry())
    declared = {w._name: frozenset(w._labelnames) for w in vars(metrics).values() if isinstance(w, MetricWrapperBase)}
    series: dict[str, Series] = {}
    for family in metrics.registry.collect():
        sampled = frozenset(label for s in family.samples for label in s.labels)
        assert family.name in declared or family.samples, f"{family.name}: no samples and no declared labels"
        base = declared.get(family.name, sampled - {"le", "quantile"})
        assert family.type in SERIES_OF, f"{family.name}: a {family.type} family, unknown to this test"
        for suffix, kind, extra in SERIES_OF[family.type]:
            series[family.name + suffix] = Series(kind, base | frozenset(extra), family.name)
        missing = {s.name for s in family.samples} - set(series)
        assert not missing, f"{family.name}: samples {missing} not derived from its type"
    series["up"] = Series("gauge", frozenset(), "up")  # Prometheus's own, per target
    return series


SERIES = exposed_series()
CUSTSYNC_FAMILIES = {s.family for s in SERIES.values() if s.family.startswith("custsync_")}


# -- PromQL ---------------------------------------------------------------------------------------


class BadQuery(AssertionError):
    pass


COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCTIONS = {"delta", "idelta", "deriv", "predict_linear", "double_exponential_smoothing", "holt_winters"}
LABEL_KEEPING_AGGREGATIONS = {"topk", "bottomk", "limitk", "limit_ratio"}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


def selector_name(node) -> str:
    if node.name:
        return node.name
    names = [m.value for m in node.matchers.matchers if m.name == "__name__" and m.op == pq.MatchOp.Equal]
    if not names:
        raise BadQuery(f"{node}: a selector without a metric name")
    return names[0]


def labels_of(node) -> frozenset[str] | None:
    """The label names ``node`` returns (None: a scalar), checking each step on the way."""
    if isinstance(node, pq.MatrixSelector):
        return labels_of(node.vector_selector)
    if isinstance(node, pq.VectorSelector):
        name = selector_name(node)
        if name not in SERIES:
            raise BadQuery(f"unknown metric {name!r}: custsync exposes no such series")
        labels = SERIES[name].labels | TARGET_LABELS
        for m in node.matchers.matchers:
            if m.name != "__name__" and m.name not in labels:
                raise BadQuery(f"{name} has no label {m.name!r} (it has {sorted(labels)})")
        return labels
    if isinstance(node, (pq.NumberLiteral, pq.StringLiteral)):
        return None
    if isinstance(node, (pq.ParenExpr, pq.UnaryExpr, pq.SubqueryExpr)):
        return labels_of(node.expr)
    if isinstance(node, pq.Call):
        return call_labels(node)
    if isinstance(node, pq.AggregateExpr):
        return aggregate_labels(node)
    if isinstance(node, pq.BinaryExpr):
        return binary_labels(node)
    raise BadQuery(f"{type(node).__name__}: not a node this check knows")


def series_under(node) -> str | None:
    if isinstance(node, pq.MatrixSelector):
        return selector_name(node.vector_selector)
    if isinstance(node, pq.SubqueryExpr):
        return series_under(node.expr)
    if isinstance(node, pq.VectorSelector):
        return selector_name(node)
    return None


def call_labels(node) -> frozenset[str] | None:
    name = node.func.name
    args = [labels_of(a) for a in node.args]
    if name in COUNTER_FUNCTIONS | GAUGE_FUNCTIONS:
        metric = series_under(node.args[0])
        wanted = "counter" if name in COUNTER_FUNCTIONS else "gauge"
        if metric is not None and SERIES[metric].kind != wanted:
            raise BadQuery(f"{name}() over {metric}, a {SERIES[metric].kind}: {name}() takes a {wanted}")
    if name == "histogram_quantile":
        inner = args[1]
        if "le" not in inner:
            raise BadQuery("histogram_quantile() over a vector without `le`: keep it in the aggregation's by (...)")
        metric = only_series_in(node.args[1])
        if metric is None or not metric.endswith("_bucket"):
            raise BadQuery(f"histogram_quantile() over {metric}, not a histogram's _bucket series")
        return inner - {"le"}
    if name in ("absent", "absent_over_time"):  # no series, or one with the selector's equality labels
        selector = node.args[0].vector_selector if isinstance(node.args[0], pq.MatrixSelector) else node.args[0]
        if not isinstance(selector, pq.VectorSelector):
            return frozenset()
        return frozenset(m.name for m in selector.matchers.matchers if m.op == pq.MatchOp.Equal and m.name != "__name__")
    if name in ("label_replace", "label_join"):
        raise BadQuery(f"{name}(): not supported by this check; extend it first")
    if node.func.return_type == pq.ValueType.Scalar:
        return None
    vectors = [a for a in args if a is not None]
    return vectors[0] if vectors else frozenset()


def only_series_in(node) -> str | None:
    """The one series an expression reads (None: none, or several)."""
    found: list[str] = []

    def visit(n):
        if isinstance(n, pq.VectorSelector):
            found.append(selector_name(n))

    pq.walk(node, pre_visit=visit)
    return found[0] if len(set(found)) == 1 else None


def aggregate_labels(node) -> frozenset[str]:
    inner = labels_of(node.expr)
    op = str(node.op)
    if node.modifier is not None:
        named = set(node.modifier.labels)
        unknown = named - inner
        if unknown:
            raise BadQuery(f"{op} by/without {sorted(unknown)}: not labels of what it aggregates ({sorted(inner)})")
        if node.modifier.type == pq.AggModifierType.By:
            return frozenset(named)
        return inner - named
    return inner if op in LABEL_KEEPING_AGGREGATIONS else frozenset()


def binary_labels(node) -> frozenset[str] | None:
    lhs, rhs = labels_of(node.lhs), labels_of(node.rhs)
    if lhs is None or rhs is None:
        return rhs if lhs is None else lhs
    op = str(node.op)
    modifier = node.modifier
    card = modifier.card if modifier is not None else pq.VectorMatchCardinality.OneToOne
    matching = modifier.matching if modifier is not None else None
    named = set(matching.labels) if matching is not None else set()
    on = matching is not None and matching.type == pq.LabelModifierType.Include
    if on:
        if named - (lhs & rhs):
            raise BadQuery(f"on({', '.join(sorted(named))}): {sorted(named - (lhs & rhs))} not on both sides of {op}")
        compared_l = compared_r = frozenset(named)
    else:
        if named - (lhs | rhs):
            raise BadQuery(f"ignoring({', '.join(sorted(named))}): {sorted(named - (lhs | rhs))} on neither side of {op}")
        compared_l, compared_r = lhs - named, rhs - named
    if (
        op != "or"
        and compared_l != compared_r
        and card in (pq.VectorMatchCardinality.OneToOne, pq.VectorMatchCardinality.ManyToMany)
    ):
        raise BadQuery(
            f"the sides of {op} carry different labels ({sorted(compared_l)} vs {sorted(compared_r)}): "
            "no series would ever match; aggregate both alike or use on(...)"
        )
    group = set(modifier.group_labels or []) if modifier is not None else set()
    one_side = rhs if card == pq.VectorMatchCardinality.ManyToOne else lhs
    if group - one_side:
        raise BadQuery(f"group_left/right({sorted(group)}): not labels of the one side ({sorted(one_side)})")
    if op in ("and", "unless"):
        return lhs
    if op == "or":
        return lhs | rhs
    if card == pq.VectorMatchCardinality.ManyToOne:
        return lhs | group
    if card == pq.VectorMatchCardinality.OneToMany:
        return rhs | group
    return frozenset(named) if on else lhs - named


def check(expr: str) -> frozenset[str] | None:
    """Parse and check one expression; the label names it returns."""
    try:
        tree = pq.parse(expr)
    except ValueError as exc:
        raise BadQuery(f"does not parse: {exc}") from exc
    return labels_of(tree)


def metrics_named(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, pq.VectorSelector):
            names.add(selector_name(node))

    pq.walk(pq.parse(expr), pre_visit=visit)
    return names


def grafana_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a dashboard variable this test does not know: {expr}"
    return expr


LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ALERT_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")


def check_legend(expr: str, legend: str) -> None:
    returned = check(expr) or frozenset()
    unknown = set(LEGEND_LABEL.findall(legend)) - returned
    if unknown:
        raise BadQuery(f"legend {legend!r} names {sorted(unknown)}, not labels of what {expr!r} returns ({sorted(returned)})")


# -- the files ------------------------------------------------------------------------------------


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(ALERTS_YML)["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict]:
    panels = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row keeps its panels inside
    return panels


def dashboard_targets() -> dict[str, dict]:
    targets = {f"{p['title']}/{t['refId']}": t for p in dashboard_panels() for t in p.get("targets", [])}
    assert len(targets) == sum(len(p.get("targets", [])) for p in dashboard_panels()), "panel titles repeat"
    return targets


ALERTS = {rule["alert"]: rule for rule in alert_rules()}
TARGETS = dashboard_targets()


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_yaml_files_parse(path):
    assert isinstance(load_yaml(path), dict)


def test_the_dashboard_is_json_grafana_provisions():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "custsync-overview"  # fixed: links and bookmarks survive a reload
    assert 39 <= dashboard["schemaVersion"] <= 42  # Grafana 11 and 12 read it without a migration of note
    assert dashboard.get("id") is None  # an id is the database's, not the file's
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "panel titles repeat"
    occupied: dict[tuple[int, int], str] = {}
    for p in panels:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, f"{p['title']}: outside the 24 columns"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in occupied, f"{p['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = p["title"]


def test_every_panel_and_query_uses_the_provisioned_datasource():
    uid = load_yaml(DATASOURCES)["datasources"][0]["uid"]
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"], f"{panel['title']}/{t['refId']}"


@pytest.mark.parametrize("where", sorted(TARGETS))
def test_every_dashboard_query_names_real_metrics_and_labels(where):
    target = TARGETS[where]
    expr = grafana_expr(target["expr"])
    check(expr)
    check_legend(expr, target.get("legendFormat", ""))


def test_the_dashboard_shows_every_custsync_metric():
    shown = set().union(*(metrics_named(grafana_expr(t["expr"])) for t in TARGETS.values()))
    missing = sorted(CUSTSYNC_FAMILIES - {SERIES[name].family for name in shown})
    assert missing == [], f"custsync metrics no panel shows: {missing}"


def test_the_dashboard_has_the_panels_on_call_reads():
    titles = {p["title"] for p in dashboard_panels()}
    for title in (
        "Outbox backlog and oldest age",
        "Consumer lag per topic/partition",
        "Deliveries by outcome",
        "End-to-end sync latency p50 / p99",
        "Retried and dead-lettered",
        "Dead letters waiting per topic",
        "Calls by status class",
        "Rate-limited (429)",
        "Request budget wait p50 / p99",
        "Webhooks received by result",
        "Webhooks rejected by reason",
        "Customers out of sync by status",
        "Catch-up",
        "Reconcile",
        "Last success age",
    ):
        assert title in titles


def test_every_alert_rule_is_complete():
    assert len(ALERTS) == len(alert_rules()), "alert names repeat"
    for name, rule in ALERTS.items():
        assert name.startswith("Custsync"), name
        assert pq.parse_duration(rule["for"]).total_seconds() >= 60, f"{name}: `for` under a minute pages on a blip"
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_expression_names_real_metrics_and_labels(name):
    rule = ALERTS[name]
    returned = check(rule["expr"]) or frozenset()
    text = " ".join(rule["annotations"].values())
    unknown = set(ALERT_LABEL.findall(text)) - returned
    assert not unknown, f"{name}'s text names {sorted(unknown)}, not labels of what its expression returns ({sorted(returned)})"


def test_the_alerts_cover_what_pages():
    named = {name: metrics_named(rule["expr"]) for name, rule in ALERTS.items()}
    wanted = {
        "up",
        "custsync_outbox_oldest_event_age_seconds",
        "custsync_consumer_lag_messages",
        "custsync_dead_letters_waiting",
        "custsync_external_requests_total",
        "custsync_last_success_timestamp_seconds",
        "custsync_customers_out_of_sync",
        "custsync_status_sampled_timestamp_seconds",
        "custsync_catchup_changes_total",
    }
    assert wanted <= set().union(*named.values())


# The negative cases: each must be refused, for the reason given.
BROKEN = {
    "a renamed metric": (
        ALERTS["CustsyncOutboxStuck"]["expr"].replace(
            "custsync_outbox_oldest_event_age_seconds", "custsync_outbox_oldest_age_seconds"
        ),
        "unknown metric 'custsync_outbox_oldest_age_seconds'",
    ),
    "a counter without _total": ("sum(rate(custsync_deliveries[5m]))", "unknown metric"),
    "a selector label the metric lacks": ('custsync_external_requests_total{status="429"}', "has no label 'status'"),
    "a by label the metric lacks": ("sum by (topic) (custsync_customers_out_of_sync)", "not labels of what it aggregates"),
    "a quantile without le": (
        "histogram_quantile(0.99, sum by (system) (rate(custsync_rate_limit_wait_seconds_bucket[5m])))",
        "without `le`",
    ),
    "rate over a gauge": ("rate(custsync_outbox_backlog_events[5m])", "takes a counter"),
    "sides that never match": (
        "sum by (system) (rate(custsync_external_requests_total[5m])) / sum(rate(custsync_external_requests_total[5m]))",
        "carry different labels",
    ),
    "on() a label one side lacks": (
        "max by (system) (custsync_customers_out_of_sync) > on (topic) max by (topic) (custsync_dead_letters_waiting)",
        "not on both sides",
    ),
    "bad syntax": ("sum by (system) (rate(custsync_external_requests_total[5m])", "does not parse"),
    "a range where an instant vector is due": ("sum(custsync_deliveries_total[5m])", "does not parse"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_expression_would_be_caught(case):
    expr, reason = BROKEN[case]
    with pytest.raises(BadQuery, match=re.escape(reason)):
        check(expr)


def test_a_legend_naming_a_label_the_query_drops_would_be_caught():
    check_legend("sum by (system) (rate(custsync_external_requests_total[5m]))", "{{system}}")
    with pytest.raises(BadQuery, match="legend"):
        check_legend("sum by (system) (rate(custsync_external_requests_total[5m]))", "{{system}} {{status_class}}")


# -- Prometheus's targets and Grafana's provisioning against the compose file -----------------------


def served_metrics(service: dict) -> tuple[str, int]:
    """(host, port) a custsync service serves /metrics on, as its compose command and environment say."""
    command = service["command"]
    if command[0] == "api":
        params = cli.commands["api"].make_context("api", list(command[1:])).params
        return params["host"], params["port"]
    if command[0] == "worker":
        env = service["environment"]
        return env.get("METRICS_HOST", "127.0.0.1"), int(env.get("METRICS_PORT", 0))
    raise AssertionError(f"{command[0]} serves no /metrics")


def scrape_problems(prometheus: dict, compose: dict) -> list[str]:
    problems = []
    scraped = set()
    for job in prometheus["scrape_configs"]:
        if job.get("metrics_path", "/metrics") not in metrics_route(None).paths:
            problems.append(f"{job['job_name']}: custsync serves no {job['metrics_path']}")
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                service = compose["services"].get(host)
                if service is None:
                    problems.append(f"{target}: no compose service {host!r}")
                    continue
                if service.get("profiles"):
                    problems.append(f"{target}: {host} runs only under a profile")
                listen_host, listen_port = served_metrics(service)
                if int(port) != listen_port:
                    problems.append(f"{target}: {host} serves /metrics on {listen_port}")
                if listen_host not in ("0.0.0.0", "::"):
                    problems.append(f"{target}: {host} listens on {listen_host} only, unreachable from prometheus")
                scraped.add(host)
    if scraped != {"api", "worker"}:
        problems.append(f"scraped {sorted(scraped)}, not the api and the worker")
    return problems


def test_prometheus_scrapes_the_api_and_the_worker_where_they_serve(compose):
    assert scrape_problems(load_yaml(PROMETHEUS_YML), compose) == []


def test_a_wrong_scrape_port_would_be_caught(compose):
    worker = compose["services"]["worker"]
    moved = {
        **compose,
        "services": {
            **compose["services"],
            "worker": {**worker, "environment": {**worker["environment"], "METRICS_PORT": "9200"}},
        },
    }
    assert scrape_problems(load_yaml(PROMETHEUS_YML), moved) == ["worker:9100: worker serves /metrics on 9200"]
    renamed = {**compose, "services": {k if k != "api" else "custsync-api": v for k, v in compose["services"].items()}}
    assert any("no compose service 'api'" in p for p in scrape_problems(load_yaml(PROMETHEUS_YML), renamed))


def mounted(service: dict, container_path: str) -> Path:
    """The repository path a container path of ``service`` reads, through its bind mounts."""
    best = None
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith((".", "/")):
            continue  # a named volume: data, not the repository
        assert mode == ["ro"], f"{volume}: configuration is mounted read-only"
        mounted = container_path == target or container_path.startswith(target.rstrip("/") + "/")
        if mounted and (best is None or len(target) > len(best[1])):
            best = (source, target)
    assert best is not None, f"nothing mounted at {container_path}"
    source, target = best
    return (ROOT / source / container_path[len(target) :].lstrip("/")).resolve()


def flag(command: list[str], name: str) -> str | None:
    return next((arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")), None)


def test_prometheus_reads_its_configuration_and_rules_from_the_repository(compose):
    prometheus = compose["services"]["prometheus"]
    assert mounted(prometheus, flag(prometheus["command"], "config.file")) == PROMETHEUS_YML
    rule_files = load_yaml(PROMETHEUS_YML)["rule_files"]
    assert [mounted(prometheus, path) for path in rule_files] == [ALERTS_YML]


def test_grafana_reads_the_datasource_and_the_dashboard_from_the_repository(compose):
    grafana = compose["services"]["grafana"]
    env = grafana.get("environment", {})
    assert env.get("GF_PATHS_PROVISIONING", GRAFANA_PROVISIONING) == GRAFANA_PROVISIONING
    assert mounted(grafana, f"{GRAFANA_PROVISIONING}/datasources/prometheus.yml") == DATASOURCES
    assert mounted(grafana, f"{GRAFANA_PROVISIONING}/dashboards/custsync.yml") == DASHBOARD_PROVIDERS
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert DASHBOARD in mounted(grafana, provider["options"]["path"]).glob("*.json")
    assert mounted(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]) == DASHBOARD


def test_grafanas_datasource_is_the_compose_prometheus(compose):
    (source,) = load_yaml(DATASOURCES)["datasources"]
    assert source["type"] == "prometheus"
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", source["url"])
    assert match, source["url"]
    host, port = match[1], int(match[2])
    prometheus = compose["services"][host]
    assert prometheus["image"].startswith("prom/prometheus:")
    listen = flag(prometheus["command"], "web.listen-address")
    assert port == (int(listen.rpartition(":")[2]) if listen else PROMETHEUS_PORT)
    # $__rate_interval is worked out from the scrape interval Grafana is told.
    assert source["jsonData"]["timeInterval"] == load_yaml(PROMETHEUS_YML)["global"]["scrape_interval"]


def test_the_monitoring_services_are_pinned_and_bound_to_this_host(compose):
    images = {"prometheus": r"prom/prometheus:v\d+\.\d+\.\d+", "grafana": r"grafana/grafana:\d+\.\d+\.\d+"}
    for name, image in images.items():
        service = compose["services"][name]
        assert re.fullmatch(image, service["image"]), service["image"]
        assert service["profiles"] == ["monitoring"]
        for port in service["ports"]:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


# -- the runbook ----------------------------------------------------------------------------------

RUNBOOK = ROOT / "docs/operations/runbook.md"


def test_every_alert_links_its_runbook_entry_and_the_runbook_has_one_for_each():
    """Whoever is paged reads the alert's runbook_url: an entry (a `## <alert>` heading) for every
    alert, and none for an alert that no longer exists."""
    entries = re.findall(r"^## (Custsync\w+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    assert entries == list(ALERTS), "the runbook's entries are not the alerts of alerts.yml, in its order"
    for name, rule in ALERTS.items():
        assert rule["annotations"]["runbook_url"] == f"docs/operations/runbook.md#{name.lower()}", name
