"""Deployment files (deploy/), the demo (scripts/demo) and the Locust load
test (bench/locustfile.py), validated as far as this machine allows: Docker
and Kubernetes cannot run here, so the image is never built and no manifest
is applied.  What is checked instead (docs/deploy.md lists it):

- deploy/prometheus.yml and its rules pass `promtool check config`, and a
  real Prometheus started with them scrapes a real node, evaluates every
  rule without error and answers every Grafana dashboard query with data;
- every YAML file parses; the Kubernetes objects have known apiVersion/kind
  pairs and the fields that matter (volumeClaimTemplates, probes on
  /health/live and /health/ready on the HTTP port, non-root read-only
  securityContext, grace period > --shutdown-timeout, selectors that match);
  their container args are real flags (`shardkv --help`) and start a node;
- every metric named in the dashboard and in the alert rules is in a real
  node's /metrics, and every dashboard query is valid PromQL (promtool);
- the Dockerfile passes our own lint (hadolint is not packaged in Debian 12),
  its HEALTHCHECK command runs against a real node, its runtime libraries
  are exactly what `ldd` says the binary needs, and its ENV starts a node;
- `systemd-analyze verify` and `systemd-analyze security` accept
  deploy/shardkv.service, and the system calls a real node makes (strace)
  pass the unit's SystemCallFilter, RestrictAddressFamilies and
  MemoryDenyWriteExecute, and it writes nowhere but its data directory;
- scripts/demo and a short headless Locust run against a real node.

Debian packages beyond `scripts/install-deps test`: python3-yaml,
python3-locust (Locust 2.12), strace; tests needing a missing one skip.
"""
import csv
import functools
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest
import requests

import skvtest
from skvtest import BIN, REPO, TMUL

T = 5 * TMUL
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
PROM_CONFIG = DEPLOY / "prometheus.yml"
PROM_RULES = DEPLOY / "prometheus-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "shardkv.json"
UNIT = DEPLOY / "shardkv.service"
DEMO = REPO / "scripts" / "demo"
LOCUSTFILE = REPO / "bench" / "locustfile.py"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PYTHON = "/usr/bin/python3"

# The uid the image runs as (Dockerfile USER) and the manifests require.
IMAGE_UID = 10001


def have(path):
    return path is not None and os.access(path, os.X_OK)


def yaml_module():
    return pytest.importorskip("yaml", reason="python3-yaml is not installed")


def load_yaml_docs(path):
    yaml = yaml_module()
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# ---- facts about the binary --------------------------------------------------------------------


@functools.lru_cache(None)
def shardkv_flags():
    """The long options `shardkv --help` lists."""
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10 * TMUL)
    assert r.returncode == 0, r.stderr
    flags = set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", r.stdout, re.M))
    assert {"port", "metrics-port", "data-dir", "shutdown-timeout"} <= flags, r.stdout
    return frozenset(flags)


def env_to_flag(name):
    """SHARDKV_METRICS_PORT -> metrics-port."""
    assert name.startswith("SHARDKV_"), name
    return name[len("SHARDKV_"):].lower().replace("_", "-")


def seconds(text):
    """A shardkv / systemd / compose duration ("20s", "1m", "1500ms", "30") in seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", str(text))
    assert m, f"not a duration: {text!r}"
    mult = {"ms": 0.001, None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * mult


SHUTDOWN_DEFAULT = 10.0  # --shutdown-timeout default (README)


def split_args(args):
    """["--a=1", "--b", "2"] -> {"a": "1", "b": "2"} (options only)."""
    out = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a[2:].split("=", 1)
            else:
                k, v = a[2:], args[i + 1] if i + 1 < len(args) else ""
                i += 1
            out[k] = v
        i += 1
    return out


def metric_families(server):
    """Metric names a node's /metrics exposes (histograms with _bucket/_sum/_count)."""
    text = requests.get(server.murl("/metrics"), timeout=T).text
    names = set()
    for name, typ in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if typ == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    names |= {n for n, _, _ in skvtest.metric_samples(text)}
    return names


# ---- PromQL helpers ----------------------------------------------------------------------------

PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "inf", "nan", "atan2", "le"}


def promql_metric_names(expr):
    """Metric names an expression selects: identifiers that are not functions,
    keywords, label names (in {...}, by/without/on/ignoring(...)) or strings."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        tail = s[m.end():].lstrip()
        word = m.group(0)
        if tail.startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] in ".$"):
            continue  # 1e3, 0.5m, $var
        names.add(word)
    return names


def grafana_to_promql(expr, rate_interval="1m"):
    """A dashboard expression with Grafana's variables replaced, as Prometheus would get it."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
            .replace("$instance", ".*"))


def dashboard():
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dash=None):
    """(panel title, expr) of every query of the dashboard (rows included)."""
    dash = dash or dashboard()
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((p.get("title"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash["panels"])
    return out


def rule_exprs():
    doc = load_yaml_docs(PROM_RULES)[0]
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in doc["groups"] for r in g["rules"]]


def promtool_check_exprs(tmp_path, exprs):
    """promtool parses every expression (as recording rules)."""
    yaml = yaml_module()
    rules = {"groups": [{"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": e}
                                                    for i, e in enumerate(exprs)]}]}
    f = tmp_path / "exprs.rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = subprocess.run([PROMTOOL, "check", "rules", str(f)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- Prometheus configuration ------------------------------------------------------------------


@pytest.mark.skipif(not have(PROMTOOL), reason="promtool not installed (Debian package prometheus)")
def test_promtool_check_config():
    r = subprocess.run([PROMTOOL, "check", "config", str(PROM_CONFIG)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
    assert "prometheus-rules.yml" in r.stdout + r.stderr  # the rules were checked too


def test_prometheus_config_targets_the_metrics_port():
    conf = load_yaml_docs(PROM_CONFIG)[0]
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    assert "shardkv" in jobs
    targets = [t for sc in jobs["shardkv"]["static_configs"] for t in sc["targets"]]
    compose = load_yaml_docs(COMPOSE)[0]
    env = compose["services"]["shardkv"].get("environment", {})
    metrics_port = env.get("SHARDKV_METRICS_PORT") or dockerfile_env().get("SHARDKV_METRICS_PORT")
    assert targets == [f"shardkv:{metrics_port}"], targets  # the compose service, its metrics port
    assert jobs["shardkv"].get("metrics_path", "/metrics") == "/metrics"


def test_alert_rules_use_only_exported_metrics(server):
    have_names = metric_families(server) | {"up"}
    used = set()
    for name, expr in rule_exprs():
        names = promql_metric_names(expr)
        assert names, (name, expr)
        used |= names
    missing = sorted(used - have_names)
    assert not missing, f"alert rules use metrics the node does not export: {missing}"


# ---- YAML --------------------------------------------------------------------------------------


def yaml_files():
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))


def test_every_yaml_file_parses():
    files = yaml_files()
    assert len(files) >= 9, files  # compose, prometheus x2, grafana x2, k8s x5
    for p in files:
        docs = load_yaml_docs(p)
        assert docs, f"{p}: no YAML document"
        assert all(isinstance(d, dict) for d in docs), f"{p}: a document is not a mapping"


# ---- Kubernetes --------------------------------------------------------------------------------

KNOWN_KINDS = {
    ("apps/v1", "StatefulSet"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"), ("v1", "ConfigMap"), ("v1", "Namespace"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def k8s_objects():
    """{(kind, name): (object, file name)} of deploy/k8s/*.yaml."""
    out = {}
    for p in sorted(K8S.glob("*.y*ml")):
        for d in load_yaml_docs(p):
            key = (d.get("kind"), (d.get("metadata") or {}).get("name", p.stem))
            assert key not in out, f"{key} defined twice"
            out[key] = (d, p.name)
    return out


def statefulset():
    objs = k8s_objects()
    sts = [o for (k, _), (o, _) in objs.items() if k == "StatefulSet"]
    assert len(sts) == 1
    return sts[0]


def container(sts=None):
    sts = sts or statefulset()
    cs = sts["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1
    return cs[0]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def test_k8s_objects_are_known_and_named():
    objs = k8s_objects()
    for (kind, name), (o, fname) in objs.items():
        assert (o.get("apiVersion"), kind) in KNOWN_KINDS, f"{fname}: unknown {o.get('apiVersion')} {kind}"
        if kind != "Kustomization":
            assert DNS1123.match(name) and len(name) <= 63, f"{fname}: bad name {name!r}"
            assert "namespace" not in o["metadata"], f"{fname}: namespace is left to kubectl -n / kustomize"
    kinds = {k for k, _ in objs}
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "ServiceMonitor", "Kustomization"} <= kinds
    # The ServiceMonitor needs the Prometheus Operator's CRDs: its own file, not in the kustomization.
    sm_file = objs[("ServiceMonitor", "shardkv")][1]
    assert sm_file == "servicemonitor.yaml"
    kust = [o for (k, _), (o, _) in objs.items() if k == "Kustomization"][0]
    assert sm_file not in kust["resources"]
    for res in kust["resources"]:
        assert (K8S / res).is_file(), res
    listed = {f for (_, _), (_, f) in objs.items()} - {"kustomization.yaml", sm_file}
    assert listed == set(kust["resources"]), (listed, kust["resources"])


def test_k8s_statefulset_fields():
    objs = k8s_objects()
    sts = statefulset()
    spec = sts["spec"]
    pod = spec["template"]
    labels = pod["metadata"]["labels"]
    assert selects(spec["selector"]["matchLabels"], labels)
    # One independent node until cluster mode: several pods behind one Service would split the data.
    assert spec["replicas"] == 1

    # A PersistentVolumeClaim per pod, mounted at the data directory.
    vcts = spec["volumeClaimTemplates"]
    assert len(vcts) == 1
    claim = vcts[0]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    c = container(sts)
    args = c["args"]
    assert args[0] == "serve"
    opts = split_args(args[1:])
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == opts["data-dir"]

    # Headless Service named by serviceName.
    headless = objs[("Service", spec["serviceName"])][0]
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"], labels)

    # Ports and probes.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(opts["port"])
    assert ports["metrics"] == int(opts["metrics-port"])
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        port = get["port"]
        assert (ports[port] if isinstance(port, str) else port) == int(opts["port"]), probe
        assert c[probe].get("timeoutSeconds", 1) >= 1

    # Resources.
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind

    # Non-root, read-only root filesystem, no privilege escalation.
    psc = pod["spec"]["securityContext"]
    csc = c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == IMAGE_UID and psc["fsGroup"] == IMAGE_UID
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]

    # SIGTERM drains for --shutdown-timeout; SIGKILL must come later.
    shutdown = seconds(opts.get("shutdown-timeout", SHUTDOWN_DEFAULT))
    assert pod["spec"]["terminationGracePeriodSeconds"] > shutdown

    # A Service named "shardkv" would inject SHARDKV_PORT=tcp://... (docker-link
    # variables), which shardkv reads as --port and refuses.
    assert pod["spec"]["enableServiceLinks"] is False

    # Prometheus annotations point at the metrics port.
    ann = pod["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == int(opts["metrics-port"])
    assert ann.get("prometheus.io/path", "/metrics") == "/metrics"


def test_k8s_args_are_real_flags():
    c = container()
    assert c["args"][0] == "serve"
    flags = shardkv_flags()
    for a in c["args"][1:]:
        assert a.startswith("--") and "=" in a, f"use --flag=value: {a}"
        assert a[2:].split("=", 1)[0] in flags, f"{a}: not a shardkv flag (shardkv --help)"
    for e in c.get("env", []):
        if e["name"].startswith("SHARDKV_"):
            assert env_to_flag(e["name"]) in flags, e["name"]
    # --max-memory below the memory limit: 507s instead of an OOM kill.
    opts = split_args(c["args"][1:])
    limit = c["resources"]["limits"]["memory"]
    m = re.fullmatch(r"(\d+)(Mi|Gi)", limit)
    assert m, limit
    limit_bytes = int(m.group(1)) << (20 if m.group(2) == "Mi" else 30)
    mm = re.fullmatch(r"(\d+)([KMG]?)", opts["max-memory"])
    assert mm
    assert int(mm.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[mm.group(2)] < limit_bytes


def test_k8s_args_start_a_node(start_server):
    """The StatefulSet's flags and values are accepted by the real binary (with
    this test's own address, ports and data directory)."""
    args = [a for a in container()["args"][1:]
            if a.split("=", 1)[0] not in ("--host", "--port", "--metrics-port", "--data-dir")]
    s = start_server(*args)
    assert requests.get(s.url("/health/ready"), timeout=T).status_code == 200
    opts = split_args(args)
    assert len(s.shards()["shards"]) == int(opts["shards"])


def test_k8s_services_pdb_servicemonitor():
    objs = k8s_objects()
    sts = statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    cports = {p["name"] for p in container(sts)["ports"]}
    services = {name: o for (k, name), (o, _) in objs.items() if k == "Service"}
    assert len(services) == 2
    assert "shardkv" in services  # the client Service
    assert services["shardkv"]["spec"].get("clusterIP") != "None"
    for name, svc in services.items():
        assert selects(svc["spec"]["selector"], labels), name
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in cports, (name, p)

    pdb = objs[("PodDisruptionBudget", "shardkv")][0]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])

    sm = objs[("ServiceMonitor", "shardkv")][0]
    sel = sm["spec"]["selector"]["matchLabels"]
    matched = [n for n, svc in services.items() if selects(sel, svc["metadata"]["labels"])]
    assert matched == ["shardkv"], matched  # one Service, or every pod would be scraped twice
    ep = sm["spec"]["endpoints"]
    assert [e["port"] for e in ep] == ["metrics"]
    assert "metrics" in {p["name"] for p in services["shardkv"]["spec"]["ports"]}
    assert ep[0].get("path", "/metrics") == "/metrics"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (not a Debian 12 package)")
def test_k8s_kustomize_builds():
    """`kubectl kustomize` renders the kustomization offline (no cluster needed)."""
    r = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, KUBECONFIG=os.devnull))
    assert r.returncode == 0, r.stderr
    docs = load_yaml_docs_text(r.stdout)
    assert sorted(d["kind"] for d in docs) == ["PodDisruptionBudget", "Service", "Service", "StatefulSet"]


def load_yaml_docs_text(text):
    yaml = yaml_module()
    return [d for d in yaml.safe_load_all(text) if d is not None]


# ---- Grafana -----------------------------------------------------------------------------------


def test_grafana_dashboard_structure():
    dash = dashboard()
    assert dash["uid"] == "shardkv" and dash["title"]
    assert dash["id"] is None  # importable and provisionable anywhere
    tvars = {v["name"]: v for v in dash["templating"]["list"]}
    assert tvars["datasource"]["type"] == "datasource" and tvars["datasource"]["query"] == "prometheus"
    titles = []
    cells = set()
    for p in dash["panels"]:
        titles.append(p["title"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']!r} overlaps another"
                cells.add((x, y))
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", p["title"]
    assert len(set(titles)) == len(titles), "panel titles repeat"
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    exprs = " ".join(e for _, e in dashboard_exprs(dash))
    # What the issue asks the dashboard to show.
    for needed in ("shardkv_http_requests_total", "shardkv_http_request_duration_seconds_bucket",
                   "histogram_quantile", "shardkv_shard_size", "shardkv_shard_bytes", "code=~",
                   "shardkv_wal_fsyncs_total", "shardkv_wal_batches_total", "shardkv_cache_hits_total",
                   "shardkv_cache_misses_total"):
        assert needed in exprs, needed


def test_grafana_dashboard_metrics_exist(server):
    have_names = metric_families(server)
    used = set()
    for title, expr in dashboard_exprs():
        names = promql_metric_names(grafana_to_promql(expr))
        assert names, (title, expr)
        used |= names
    assert len(used) >= 25, sorted(used)  # the extractor is not vacuous
    missing = sorted(used - have_names)
    assert not missing, f"dashboard uses metrics the node does not export: {missing}"
    var = [v for v in dashboard()["templating"]["list"] if v["name"] == "instance"][0]
    m = re.match(r"label_values\((\w+),\s*instance\)", var["definition"])
    assert m and m.group(1) in have_names


@pytest.mark.skipif(not have(PROMTOOL), reason="promtool not installed (Debian package prometheus)")
def test_grafana_dashboard_queries_are_valid_promql(tmp_path):
    promtool_check_exprs(tmp_path, [grafana_to_promql(e) for _, e in dashboard_exprs()])


def test_grafana_provisioning_matches_compose():
    compose = load_yaml_docs(COMPOSE)[0]
    graf = compose["services"]["grafana"]
    mounts = {}
    for v in graf["volumes"]:
        src, dst = v.split(":")[:2]
        mounts[dst] = src
        if src.startswith("."):
            assert (DEPLOY / src).exists(), src
    ds_dir = DEPLOY / mounts["/etc/grafana/provisioning/datasources"]
    db_dir = DEPLOY / mounts["/etc/grafana/provisioning/dashboards"]
    ds = [d for p in sorted(ds_dir.glob("*.y*ml")) for d in load_yaml_docs(p)]
    assert len(ds) == 1 and ds[0]["apiVersion"] == 1
    source = ds[0]["datasources"][0]
    assert source["type"] == "prometheus"
    prom_port = compose["services"]["prometheus"]["ports"][0].split(":")[-1]
    assert source["url"] == f"http://prometheus:{prom_port}"
    providers = [d for p in sorted(db_dir.glob("*.y*ml")) for d in load_yaml_docs(p)][0]["providers"]
    path = providers[0]["options"]["path"]
    dash_mounts = [dst for dst, src in mounts.items() if src == "./grafana/shardkv.json"]
    assert dash_mounts and pathlib.PurePosixPath(dash_mounts[0]).parent == pathlib.PurePosixPath(path)


# ---- a real Prometheus scraping a real node ----------------------------------------------------


@pytest.mark.skipif(not have(PROMETHEUS), reason="prometheus not installed (Debian package prometheus)")
def test_prometheus_scrapes_node_rules_and_dashboard_return_data(start_server, tmp_path):
    """deploy/prometheus.yml and its rules in a real Prometheus (1 s intervals,
    the target pointed at a test node): the scrape is up, every alert rule
    evaluates without error, and every dashboard query returns samples."""
    yaml = yaml_module()
    s = start_server("--max-memory", "64M", "--max-keys", "100000")
    conf = load_yaml_docs(PROM_CONFIG)[0]
    conf["global"]["scrape_interval"] = "1s"
    conf["global"]["evaluation_interval"] = "1s"
    for job in conf["scrape_configs"]:
        if job["job_name"] == "shardkv":
            job["static_configs"] = [{"targets": [f"{skvtest.HOST}:{s.metrics_port}"]}]
    port = skvtest.free_port()
    for job in conf["scrape_configs"]:
        if job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"{skvtest.HOST}:{port}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(conf))
    shutil.copy(PROM_RULES, tmp_path / PROM_RULES.name)
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address={skvtest.HOST}:{port}"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    base = f"http://{skvtest.HOST}:{port}"

    def query(q):
        r = requests.get(f"{base}/api/v1/query", params={"query": q}, timeout=T)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (q, r.text)
        return body["data"]["result"]

    def traffic():
        requests.put(s.url("/v1/kv/prom-test"), data=b"x", timeout=T)
        requests.get(s.url("/v1/kv/prom-test"), timeout=T)
        requests.get(s.url("/v1/kv/prom-missing"), timeout=T)  # a 404 and a cache miss

    try:
        exprs = [(title, grafana_to_promql(e, "10s")) for title, e in dashboard_exprs()]
        pending = dict.fromkeys(exprs)
        deadline = time.monotonic() + 60 * TMUL
        while pending and time.monotonic() < deadline:
            assert prom.poll() is None, (tmp_path / "prometheus.log").read_text()
            traffic()
            try:
                for item in list(pending):
                    if query(item[1]):
                        del pending[item]
            except requests.ConnectionError:
                pass  # not listening yet
            time.sleep(0.5)
        assert not pending, f"dashboard queries without data: {list(pending)}"
        assert query('up{job="shardkv"} == 1')

        # Every alert rule was evaluated, without error.
        deadline = time.monotonic() + 30 * TMUL
        while True:
            groups = requests.get(f"{base}/api/v1/rules", timeout=T).json()["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(rules) == len(rule_exprs())
        bad = [(r["name"], r.get("health"), r.get("lastError")) for r in rules if r.get("health") != "ok"]
        assert not bad, bad
        # A healthy node fires nothing.
        firing = [r["name"] for r in rules if r.get("state") == "firing"]
        assert not firing, firing
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()


# ---- Dockerfile --------------------------------------------------------------------------------


def dockerfile_instructions():
    """[(stage index, INSTRUCTION, rest)] with continuation lines joined and comments dropped."""
    lines = []
    cur = ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not cur and raw.lstrip().startswith("#"):
            continue
        if cur and raw.lstrip().startswith("#"):
            continue  # comment lines inside a continued instruction
        if raw.rstrip().endswith("\\"):
            cur += raw.rstrip()[:-1] + " "
            continue
        cur += raw
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    out = []
    stage = -1
    for line in lines:
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            stage += 1
        out.append((stage, word, rest.strip()))
    return out


def dockerfile_env():
    env = {}
    for _, word, rest in dockerfile_instructions():
        if word == "ENV":
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


def apt_packages(run_args):
    """Packages named by `apt-get install` in a RUN line."""
    m = re.search(r"apt-get install ([^&;|]*)", run_args)
    if not m:
        return set()
    return {w for w in m.group(1).split() if not w.startswith("-")}


def install_deps_profile(profile):
    text = (REPO / "scripts" / "install-deps").read_text()
    m = re.search(rf"^{profile}_pkgs=\(([^)]*)\)", text, re.M)
    assert m, f"{profile}_pkgs not found in scripts/install-deps"
    return set(m.group(1).split())


def test_dockerfile_lint():
    """Our own Dockerfile checks (hadolint is not packaged in Debian 12)."""
    ins = dockerfile_instructions()
    froms = [rest for _, w, rest in ins if w == "FROM"]
    assert len(froms) == 2, froms
    assert re.fullmatch(r"debian:12 AS build", froms[0], re.I), froms[0]
    assert re.fullmatch(r"debian:12-slim( AS \w+)?", froms[1], re.I), froms[1]
    final = len(froms) - 1
    by_stage = lambda st, w: [rest for s, word, rest in ins if s == st and word == w]  # noqa: E731

    # Known instructions only, no ADD (and so no ADD of a URL), no curl|sh.
    known = {"FROM", "RUN", "COPY", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "VOLUME", "HEALTHCHECK",
             "ENTRYPOINT", "CMD", "STOPSIGNAL", "LABEL", "SHELL"}
    for _, w, rest in ins:
        assert w in known, w
        assert not re.search(r"https?://", rest) or w == "LABEL", f"{w} {rest}: no downloads in the build"
    assert not [r for _, w, r in ins if w == "ADD"], "use COPY, not ADD"

    # apt hygiene in every RUN that installs.
    for _, w, rest in ins:
        if w == "RUN" and "apt-get install" in rest:
            assert "apt-get update" in rest, rest
            assert "--no-install-recommends" in rest and " -y" in rest, rest
            assert "rm -rf /var/lib/apt/lists/*" in rest, rest

    # Build stage: the packages of `scripts/install-deps build` (+ libc6-dev).
    build_pkgs = set().union(*(apt_packages(r) for r in by_stage(0, "RUN")))
    missing = install_deps_profile("build") - build_pkgs
    assert not missing, f"build stage misses packages of scripts/install-deps build: {missing}"
    assert "libc6-dev" in build_pkgs

    # Runtime stage: only runtime libraries, no -dev, no compiler, no curl.
    run_pkgs = set().union(*(apt_packages(r) for r in by_stage(final, "RUN")))
    assert run_pkgs == {"libuv1", "libjansson4", "libxxhash0", "libssl3"}, run_pkgs
    copies = by_stage(final, "COPY")
    assert copies and all(c.startswith("--from=build ") for c in copies), copies

    # The build stage copies only files that exist.
    for rest in by_stage(0, "COPY"):
        srcs = rest.split()[:-1]
        for src in srcs:
            assert (REPO / src).exists(), src

    # Non-root user, as its last USER; a uid the manifests can require.
    users = by_stage(final, "USER")
    assert users, "no USER in the runtime stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) == IMAGE_UID

    # Data volume = the data directory; both ports exposed.
    env = dockerfile_env()
    volumes = " ".join(by_stage(final, "VOLUME"))
    assert env["SHARDKV_DATA_DIR"] in volumes
    exposed = set(" ".join(by_stage(final, "EXPOSE")).split())
    assert exposed == {env["SHARDKV_PORT"], env["SHARDKV_METRICS_PORT"]} == {"8000", "8001"}

    # ENV names real flags; exec-form ENTRYPOINT and CMD; a HEALTHCHECK on /health/live.
    flags = shardkv_flags()
    for k in env:
        assert env_to_flag(k) in flags, k
    entry = json.loads(by_stage(final, "ENTRYPOINT")[-1])
    assert entry == ["/usr/local/bin/shardkv"]
    assert json.loads(by_stage(final, "CMD")[-1]) == ["serve"]
    hc = by_stage(final, "HEALTHCHECK")
    assert len(hc) == 1 and "/health/live" in hc[0]
    assert by_stage(final, "STOPSIGNAL") == ["SIGTERM"]
    # The dockerignore next to the Dockerfile lets the COPY sources in.
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().split()
    for src in ("Makefile", "src/", "tools/", "web/"):
        assert "!" + src in ignore, src


def healthcheck_command():
    rest = [r for _, w, r in dockerfile_instructions() if w == "HEALTHCHECK"][0]
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
    assert m, rest
    cmd = json.loads(m.group(1))
    assert cmd[0] == "/bin/bash"  # Essential in Debian: present in debian:12-slim
    return cmd


def test_dockerfile_healthcheck_command_probes_a_real_node(server):
    cmd = healthcheck_command()
    ok = subprocess.run(cmd, env={"SHARDKV_PORT": str(server.port), "PATH": "/usr/bin:/bin"},
                        capture_output=True, text=True, timeout=10 * TMUL)
    assert ok.returncode == 0, ok.stderr
    dead = subprocess.run(cmd, env={"SHARDKV_PORT": str(skvtest.free_port()), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10 * TMUL)
    assert dead.returncode != 0


def test_dockerfile_healthcheck_needs_a_200(server):
    """The probe reads the status line: a 404 is unhealthy (checked by
    pointing the same command at a route that does not exist)."""
    cmd = [c.replace("/health/live", "/health/no-such-probe") for c in healthcheck_command()]
    r = subprocess.run(cmd, env={"SHARDKV_PORT": str(server.port), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=10 * TMUL)
    assert r.returncode != 0


@pytest.mark.skipif(skvtest.SANITIZED, reason="the sanitized binary links the sanitizer runtimes")
def test_dockerfile_runtime_libraries_match_ldd():
    """The runtime stage installs exactly the packages of the libraries the
    binary links, apart from libc6 (in every Debian image)."""
    r = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    pkgs = set()
    for path in re.findall(r"=> (/\S+)", r.stdout):
        real = os.path.realpath(path)
        found = None
        for cand in (real, real.replace("/usr/lib/", "/lib/", 1), real.replace("/lib/", "/usr/lib/", 1), path):
            q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if q.returncode == 0:
                found = q.stdout.split(":")[0]
                break
        assert found, f"no Debian package owns {path}"
        pkgs.add(found)
    stage = len([1 for _, w, _ in dockerfile_instructions() if w == "FROM"]) - 1
    run_pkgs = set().union(*(apt_packages(rest) for s, w, rest in dockerfile_instructions()
                             if s == stage and w == "RUN"))
    assert pkgs - {"libc6"} == run_pkgs, (pkgs, run_pkgs)


def compose_env():
    return {k: str(v) for k, v in load_yaml_docs(COMPOSE)[0]["services"]["shardkv"].get("environment", {}).items()}


def systemd_env():
    env = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("Environment="):
            for tok in shlex.split(line[len("Environment="):]):
                k, _, v = tok.partition("=")
                env[k] = v
    return env


@pytest.mark.parametrize("source", ["dockerfile", "compose", "systemd"])
def test_environment_settings_start_a_node(start_server, source):
    """The SHARDKV_* settings of the image, compose and the unit are real
    flags with accepted values (a node starts with them; the test's own
    flags for address, ports and data directory win over them)."""
    env = {"dockerfile": dockerfile_env, "compose": compose_env, "systemd": systemd_env}[source]()
    env = {k: v for k, v in env.items() if k.startswith("SHARDKV_")}
    assert env
    flags = shardkv_flags()
    for k in env:
        assert env_to_flag(k) in flags, k
    s = start_server(env=env)
    assert requests.get(s.url("/health/live"), timeout=T).json() == {"status": "alive"}
    if "SHARDKV_SHARDS" in env:
        assert len(s.shards()["shards"]) == int(env["SHARDKV_SHARDS"])


def test_compose_file():
    compose = load_yaml_docs(COMPOSE)[0]
    svcs = compose["services"]
    assert set(svcs) == {"shardkv", "prometheus", "grafana"}
    node = svcs["shardkv"]
    assert (DEPLOY / node["build"]["context"] / node["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    env = {**dockerfile_env(), **compose_env()}
    ports = {p.split(":")[-1] for p in node["ports"]}
    assert ports == {env["SHARDKV_PORT"], env["SHARDKV_METRICS_PORT"]}
    vol_targets = [v.split(":")[1] for v in node["volumes"]]
    assert env["SHARDKV_DATA_DIR"] in vol_targets
    assert seconds(node["stop_grace_period"]) > seconds(env.get("SHARDKV_SHUTDOWN_TIMEOUT", SHUTDOWN_DEFAULT))
    assert node.get("read_only") is True
    for v in svcs["prometheus"]["volumes"]:
        src = v.split(":")[0]
        if src.startswith("."):
            assert (DEPLOY / src).exists(), src
    named = {v.split(":")[0] for s in svcs.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert named <= set(compose["volumes"]), named


# ---- systemd -----------------------------------------------------------------------------------


def unit_settings():
    out = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit_settings():
    st = unit_settings()
    for key, value in {"DynamicUser": "yes", "StateDirectory": "shardkv", "ProtectSystem": "strict",
                       "NoNewPrivileges": "yes", "PrivateTmp": "yes", "Restart": "on-failure",
                       "KillSignal": "SIGTERM"}.items():
        assert st.get(key) == [value], key
    assert "@system-service" in st["SystemCallFilter"]
    assert set(st["RestrictAddressFamilies"][0].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert int(st["LimitNOFILE"][0]) >= 16384
    env = systemd_env()
    assert env["SHARDKV_DATA_DIR"] == "/var/lib/" + st["StateDirectory"][0]
    assert seconds(st["TimeoutStopSec"][0]) > seconds(env.get("SHARDKV_SHUTDOWN_TIMEOUT", SHUTDOWN_DEFAULT))
    exec_start = shlex.split(st["ExecStart"][0])
    assert exec_start[:2] == ["/usr/local/bin/shardkv", "serve"]
    for a in exec_start[2:]:
        assert a.split("=", 1)[0][2:] in shardkv_flags(), a


def unit_for_this_machine(tmp_path):
    """The unit with ExecStart pointing at the binary under test (verify
    checks that the program exists)."""
    d = tmp_path / "units"
    d.mkdir()
    p = d / "shardkv.service"
    p.write_text(UNIT.read_text().replace("/usr/local/bin/shardkv", BIN))
    return p


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    unit = unit_for_this_machine(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                       cwd=unit.parent)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "shardkv.service" not in out, out  # no warning about the unit itself


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_security_exposure(tmp_path):
    unit = unit_for_this_machine(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60, cwd=unit.parent)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    if r.returncode != 0 and not m:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {out[-300:]}")
    assert m, out
    assert float(m.group(1)) <= 2.0, out  # "OK" is < 3.0 on systemd's 0-10 scale


@functools.lru_cache(None)
def syscall_group(group):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        names |= syscall_group(s) if s.startswith("@") else {s}
    return frozenset(names)


def allowed_syscalls():
    """The set the unit's SystemCallFilter= lines allow (an allow list, then ~ deny lists)."""
    allowed = None
    for line in unit_settings()["SystemCallFilter"]:
        deny = line.startswith("~")
        names = set()
        for g in line.lstrip("~").split():
            names |= syscall_group(g) if g.startswith("@") else {g}
        if deny:
            allowed = (allowed if allowed is not None else set()) - names
        else:
            allowed = (allowed or set()) | names
    return allowed


@pytest.mark.skipif(shutil.which("strace") is None or shutil.which("systemd-analyze") is None,
                    reason="needs strace and systemd-analyze")
@pytest.mark.skipif(skvtest.SANITIZED, reason="the sanitizer runtimes make system calls of their own")
def test_systemd_sandbox_allows_what_a_node_does(tmp_path):
    """A real node under strace — start, writes, reads, scans, counters,
    documents, snapshots, metrics, SIGTERM, then a restart that recovers —
    makes only system calls the unit's SystemCallFilter allows, opens only
    sockets of RestrictAddressFamilies, never maps memory writable and
    executable (MemoryDenyWriteExecute) and writes only in its data directory
    (read-only root filesystem, ProtectSystem=strict)."""
    trace = tmp_path / "strace.txt"
    data = tmp_path / "data"
    for run in range(2):
        port, mport = skvtest.free_port(), skvtest.free_port()
        cmd = ["strace", "-f", "-qq", "-o", f"{trace}.{run}", BIN, "serve", "--host", skvtest.HOST,
               "--port", str(port), "--metrics-port", str(mport), "--data-dir", str(data),
               "--threads", "2", "--snapshot-bytes", "2K"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / f"stderr.{run}", "wb"))
        try:
            base = f"http://{skvtest.HOST}:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if requests.get(base + "/health/ready", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / f"stderr.{run}").read_text()
                time.sleep(0.05)
            for i in range(150):
                assert requests.put(f"{base}/v1/kv/k{run}-{i}", data=b"v" * 64, timeout=T).status_code in (200, 201)
            requests.put(f"{base}/v1/kv/ttl?ttl=1", data=b"x", timeout=T)
            requests.get(f"{base}/v1/kv/k0-1", timeout=T)
            requests.get(f"{base}/v1/kv?limit=10", timeout=T)
            requests.post(f"{base}/v1/counters/c/incr", timeout=T)
            requests.post(f"{base}/store", json={"userId": run, "data": "x"}, timeout=T)
            requests.post(f"{base}/users/", json={"user_id": 100 + run, "name": "n", "region": "US"}, timeout=T)
            requests.get(f"{base}/users?region=US", timeout=T)
            requests.get(f"{base}/shards?data=1", timeout=T)
            requests.get(f"{base}/health", timeout=T)
            requests.get(f"http://{skvtest.HOST}:{mport}/metrics", timeout=T)
        finally:
            # SIGTERM to the node itself (strace would not pass its own on):
            # its pid opens the trace; strace exits with the node's status.
            tfile = pathlib.Path(f"{trace}.{run}")
            first = tfile.read_text().split(None, 1) if tfile.exists() else []
            if first and first[0].isdigit():
                os.kill(int(first[0]), signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30 * TMUL)
            except subprocess.TimeoutExpired:
                if first and first[0].isdigit():
                    os.kill(int(first[0]), signal.SIGKILL)
                proc.kill()
                proc.wait()
                raise
        assert rc == 0, (tmp_path / f"stderr.{run}").read_text()
    assert list(data.glob("shard-*/snap-*.snap")), "no snapshot was written: raise the load"

    used, families, wx, writes = set(), set(), [], set()
    for run in range(2):
        for line in pathlib.Path(f"{trace}.{run}").read_text().splitlines():
            # "PID name(args..." or "PID <... name resumed>..."
            m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
            if m:
                used.add(m.group(1))
            # Files written, created or renamed (read-only root filesystem, ProtectSystem=strict).
            if re.search(r"\bopenat\(.*(O_WRONLY|O_RDWR|O_CREAT)", line) or \
                    re.search(r"\b(mkdir|rename|renameat2?|unlink|unlinkat|rmdir|ftruncate|truncate)\(", line):
                writes |= set(re.findall(r'"(/[^"]*)"', line))
            m = re.search(r"\bsocket\((AF_\w+)", line)
            if m:
                families.add(m.group(1))
            if re.search(r"\b(mmap|mprotect)\(.*PROT_WRITE\|PROT_EXEC|\b(mmap|mprotect)\(.*PROT_EXEC\|PROT_WRITE",
                         line):
                wx.append(line)
    used -= {"execve"}  # the exec of the program itself, before the filter applies
    assert "fdatasync" in used and "accept4" in used, sorted(used)  # the trace is real
    denied = sorted(used - allowed_syscalls())
    assert not denied, f"system calls the unit's SystemCallFilter would refuse: {denied}"
    allowed_families = set(unit_settings()["RestrictAddressFamilies"][0].split())
    assert families <= allowed_families, families
    assert not wx, wx[:3]
    # Only the data directory is written: the image's read-only root and the unit's ProtectSystem=strict.
    outside = sorted(w for w in writes if not w.startswith(str(data) + "/") and w != str(data))
    assert writes and not outside, outside


# ---- the demo ----------------------------------------------------------------------------------


def run_demo(*args, timeout=60):
    return subprocess.run([PYTHON, str(DEMO), *args], capture_output=True, text=True, timeout=timeout * TMUL)


def test_demo_seed_000_on_three_shards(start_server):
    s = start_server("--shards", "3")
    r = run_demo("--endpoint", f"http://{skvtest.HOST}:{s.port}")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # The seed's output: Alice 1, Bob 2, Charlie 0, Diana 1 (userId % 3).
    assert "Alice    (userId 1) -> Data stored in shard 1" in out
    assert "Bob      (userId 2) -> Data stored in shard 2" in out
    assert "Charlie  (userId 3) -> Data stored in shard 0" in out
    assert "Diana    (userId 4) -> Data stored in shard 1" in out
    assert ("Shard distribution: {'shard_0': {3: 'Charlie'}, 'shard_1': {1: 'Alice', 4: 'Diana'}, "
            "'shard_2': {2: 'Bob'}}") in out
    assert "Counter 'demo' total: 3" in out
    assert "Users in region US: 2" in out
    assert out.rstrip().endswith("demo: OK")
    # What the demo wrote is really there.
    assert requests.get(s.url("/store/3"), timeout=T).json()["shard"] == 0
    assert requests.get(s.url("/v1/counters/demo"), timeout=T).json()["value"] == 3
    # Twice on the same node: users already there are compared, the counter goes on.
    r = run_demo("--endpoint", f"http://{skvtest.HOST}:{s.port}/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Counter 'demo' total: 6" in r.stdout and "already there" in r.stdout


def test_demo_default_shards_and_region(server):
    r = run_demo("--endpoint", f"http://{skvtest.HOST}:{server.port}", "--region", "EU")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Users in region EU: 1" in r.stdout
    n = len(server.shards()["shards"])
    for uid in (1, 2, 3, 4):
        assert f"(userId {uid}) -> Data stored in shard {uid % n}" in r.stdout


def test_demo_fails_without_a_node():
    r = run_demo("--endpoint", f"http://{skvtest.HOST}:{skvtest.free_port()}", "--timeout", "2")
    assert r.returncode != 0
    assert "FAILED" in r.stderr and "cannot reach" in r.stderr


def test_demo_fails_on_a_conflicting_user(server):
    """A failure the node reports (here: user 1 exists with other fields) exits non-zero."""
    requests.post(server.url("/users/"), json={"user_id": 1, "name": "Mallory", "region": "US"}, timeout=T)
    r = run_demo("--endpoint", f"http://{skvtest.HOST}:{server.port}")
    assert r.returncode != 0
    assert "exists with other fields" in r.stderr


# ---- Locust ------------------------------------------------------------------------------------

LOCUST = shutil.which("locust")


@pytest.mark.skipif(LOCUST is None, reason="locust not installed (Debian package python3-locust)")
def test_locust_headless_run_has_no_failures(server, tmp_path):
    """The documented headless command, for 5 s, against a real node."""
    cmd = [LOCUST, "-f", str(LOCUSTFILE), "--headless", "-u", "5", "-r", "5", "-t", "5s",
           "--host", f"http://{skvtest.HOST}:{server.port}", "--csv", str(tmp_path / "locust"), "--only-summary"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90 * TMUL, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with open(tmp_path / "locust_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_name = {row["Name"]: row for row in rows}
    agg = by_name["Aggregated"]
    assert int(agg["Request Count"]) > 20, agg
    assert int(agg["Failure Count"]) == 0, agg
    for name in ("/put", "/get?key=[key]", "/store", "/v1/kv/[key] PUT", "/v1/kv/[key] GET",
                 "/v1/counters/[name]/incr"):
        assert name in by_name, (name, sorted(by_name))
    exc = (tmp_path / "locust_exceptions.csv").read_text().strip().splitlines()
    assert len(exc) <= 1, exc  # the header only
    # The command the tests run is the one the locustfile and docs/deploy.md document.
    documented = "locust -f bench/locustfile.py --headless -u 5 -r 5 -t 5s --host http://127.0.0.1:"
    assert documented in LOCUSTFILE.read_text()
    assert documented in DEPLOY_DOC.read_text()
