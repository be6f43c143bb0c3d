"""Offline checks of deploy/: everything parses, validates against its schema where one installs
(compose spec, Kubernetes OpenAPI, hadolint, PromQL grammar), and the files agree with each other
and with the metrics the daemon exports."""
from __future__ import annotations

import configparser
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml

from streamad import config as C
from streamad.daemon.telemetry import METRIC_LABELS, METRIC_NAMES, REASON_CLASSES
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
K8S_FILES = ("namespace.yaml", "configmap.yaml", "pvc.yaml", "deployment.yaml", "service.yaml", "pdb.yaml")
GENERIC_LABELS = {"instance", "job"}  # added by Prometheus at scrape time


def load(path: Path):
    return yaml.safe_load(path.read_text())


def compose() -> dict:
    return load(DEPLOY / "docker-compose.yml")


def k8s(name: str) -> dict:
    return load(K8S / name)


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Vector selectors of a PromQL expression (parsed with the Prometheus grammar)."""
    found = []
    promql_parser.walk(promql_parser.parse(expr),
                       lambda n: found.append(n) if isinstance(n, promql_parser.VectorSelector) else None)
    return found


def check_expr(expr: str) -> set[str]:
    """Parse; every streamad_* series must be exported, with label matchers it really has."""
    names = set()
    for sel in selectors(expr):
        if sel.name is None or not sel.name.startswith("streamad_"):
            continue
        assert sel.name in METRIC_NAMES, f"{sel.name} is not exported by the daemon ({expr})"
        for m in sel.matchers.matchers:
            assert m.name in set(METRIC_LABELS[sel.name]) | GENERIC_LABELS, f"{sel.name} has no label {m.name}"
        names.add(sel.name)
    return names


# -- everything parses -------------------------------------------------------------------------
def test_every_yaml_parses():
    files = sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml")) + sorted((ROOT / "configs").glob("*.yaml"))
    assert len(files) >= 15
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        assert docs, f"{f} is empty"


def test_shipped_streamad_configs_load():
    C.load(DEPLOY / "compose" / "streamad.yaml")
    cfg = C.from_dict(yaml.safe_load(k8s("configmap.yaml")["data"]["streamad.yaml"]))
    assert cfg.kafka.session_timeout_ms >= 6000 and cfg.metrics.port and cfg.metrics.host == "0.0.0.0"
    assert cfg.model.device == "cuda"


def test_deploy_configs_train_and_score_as_the_shipped_audio_default():
    """The compose and Kubernetes configs (also what the images train with) have configs/audio.yaml's
    front end, detector, score weights and training: a deployment gets the default the per-scene
    benchmark chose, with its false-alert guards (cross-fitted threshold, seam windows)."""
    ref = C.load(ROOT / "configs" / "audio.yaml").to_dict()
    shipped = {"compose": C.load(DEPLOY / "compose" / "streamad.yaml").to_dict(),
               "k8s": C.from_dict(yaml.safe_load(k8s("configmap.yaml")["data"]["streamad.yaml"])).to_dict()}
    for name, got in shipped.items():
        assert got["audio"] == ref["audio"], name
        assert got["train"] == ref["train"], name
        assert got["alerts"] == ref["alerts"], name
        drop = ("path", "device")
        assert {k: v for k, v in got["model"].items() if k not in drop} == \
            {k: v for k, v in ref["model"].items() if k not in drop}, name


def test_repo_configs_document_metrics_and_logging():
    for f in sorted((ROOT / "configs").glob("*.yaml")):
        raw = load(f)
        assert set(raw["metrics"]) == set(C.MetricsConfig.__dataclass_fields__), f
        assert set(raw["logging"]) == set(C.LoggingConfig.__dataclass_fields__), f
        assert raw["metrics"]["port"] == 0, f"{f}: metrics stay off by default"


# -- docker compose -----------------------------------------------------------------------------
def test_compose_file_matches_the_compose_spec():
    schema = json.loads((importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                         / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    validator.validate(compose())
    broken = compose()
    broken["services"]["streamad"]["depends_on"]["kafka-init"]["condition"] = "when_ready"
    assert not validator.is_valid(broken)  # the schema really constrains this file


def test_compose_services_and_their_files():
    c = compose()
    s = c["services"]
    assert set(s) == {"kafka", "kafka-init", "streamad", "prometheus", "grafana"}
    env = s["kafka"]["environment"]
    assert s["kafka"]["image"].startswith("apache/kafka:") and "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert s["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert s["streamad"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    build = s["streamad"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    missing = []
    for name, svc in s.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                if not (DEPLOY / src).exists():
                    missing.append(src)
            else:
                assert src in c["volumes"], f"{name}: named volume {src} not declared"
    assert missing == ["../models"]  # written by `streamad train --out models/audio` (deploy/README.md)


def _mounted(service: str, target: str) -> Path:
    for vol in compose()["services"][service]["volumes"]:
        src, tgt = vol.split(":")[:2]
        if tgt == target:
            return DEPLOY / src
    raise AssertionError(f"{service}: nothing mounted at {target}")


def test_compose_streamad_config_fits_kafka_and_prometheus():
    svc = compose()["services"]["streamad"]
    cfg_path = svc["command"][svc["command"].index("--config") + 1]
    cfg = C.load(_mounted("streamad", cfg_path))
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert cfg.kafka.session_timeout_ms >= 6000  # Apache Kafka's group.min.session.timeout.ms
    assert cfg.metrics.host == "0.0.0.0" and cfg.model.path.startswith("/var/lib/streamad/models/")
    prom = load(_mounted("prometheus", "/etc/prometheus/prometheus.yml"))
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "streamad")
    assert job["static_configs"][0]["targets"] == [f"streamad:{cfg.metrics.port}"]
    assert f"127.0.0.1:{cfg.metrics.port}:{cfg.metrics.port}" in svc["ports"]
    for rule_file in prom["rule_files"]:
        assert _mounted("prometheus", rule_file).is_file()


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard():
    ds = load(_mounted("grafana", "/etc/grafana/provisioning/datasources") / "prometheus.yml")["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    prov = load(_mounted("grafana", "/etc/grafana/provisioning/dashboards") / "streamad.yml")["providers"][0]
    assert (_mounted("grafana", prov["options"]["path"]) / "streamad.json").is_file()


# -- dashboard and alert rules --------------------------------------------------------------------
def _panels(dash: dict) -> list[dict]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$__range", "6h").replace("$__interval", "1m")


def test_dashboard_uses_only_exported_metrics_and_covers_the_issue():
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "streamad.json").read_text())
    panels = [p for p in _panels(dash) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dash)}) == len(_panels(dash))
    used, exprs = set(), []
    for p in panels:
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            exprs.append(t["expr"])
            names = check_expr(_grafana_to_promql(t["expr"]))
            assert names, f"panel {p['title']!r} queries no streamad metric"
            used |= names
    for var in dash["templating"]["list"]:
        for name in re.findall(r"streamad_\w+", json.dumps(var)):
            assert name in METRIC_NAMES
    want = {"streamad_windows_scored_total", "streamad_records_total", "streamad_consumer_lag",
            "streamad_alerts_total", "streamad_alert_latency_seconds_bucket", "streamad_score_seconds_bucket",
            "streamad_dead_letters_total", "streamad_streams_active", "streamad_threshold", "streamad_model_info"}
    assert want <= used, want - used
    joined = "\n".join(exprs)
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le, pipeline) (rate(streamad_alert_latency_seconds_bucket" in joined
    assert "by (pipeline, reason) (rate(streamad_dead_letters_total" in joined
    assert "by (topic, partition) (streamad_consumer_lag" in joined
    assert "by (pipeline, topic) (rate(streamad_records_total" in joined


def test_alert_rules_are_well_formed_and_use_exported_metrics():
    rules = [r for g in load(DEPLOY / "prometheus" / "alerts.yml")["groups"] for r in g["rules"]]
    assert len({r["alert"] for r in rules}) == len(rules) >= 8
    used = set()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"] and r["annotations"]["description"]
        if "for" in r:
            promql_parser.parse_duration(r["for"])
        used |= check_expr(r["expr"])
    assert {"streamad_consumer_lag", "streamad_dead_letters_total", "streamad_ready", "streamad_broker_up",
            "streamad_alert_latency_seconds_bucket", "streamad_loop_last_tick_timestamp_seconds"} <= used


def test_metric_check_catches_mistakes():
    with pytest.raises(AssertionError):
        check_expr("rate(streamad_windows_total[5m])")  # not exported
    with pytest.raises(AssertionError):
        check_expr('streamad_consumer_lag{stream="x"}')  # no such label
    with pytest.raises(ValueError):
        check_expr("rate(streamad_alerts_total[5m)")


# -- Kubernetes ---------------------------------------------------------------------------------
def test_k8s_manifests_validate_against_the_api_schema():
    listed = load(K8S / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(K8S_FILES) == sorted(p.name for p in K8S.glob("*.yaml")
                                                       if p.name != "kustomization.yaml")
    version = kubernetes_validate.latest_version()  # other versions: kubernetes-validate -k 1.30.0 --strict
    for name in K8S_FILES:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            kubernetes_validate.validate(doc, version, strict=True)
    bad = k8s("deployment.yaml")
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def test_k8s_deployment_probes_gpu_and_wiring():
    cm, dep, svc, pvc = k8s("configmap.yaml"), k8s("deployment.yaml"), k8s("service.yaml"), k8s("pvc.yaml")
    cfg = C.from_dict(yaml.safe_load(cm["data"]["streamad.yaml"]))
    pod = dep["spec"]["template"]
    (ctr,) = pod["spec"]["containers"]
    port = {p["name"]: p["containerPort"] for p in ctr["ports"]}["metrics"]
    assert port == cfg.metrics.port == int(pod["metadata"]["annotations"]["prometheus.io/port"])
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert ctr["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert int(ctr["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30
    assert dep["spec"]["replicas"] <= cfg.kafka.partitions
    mounts = {m["name"]: m["mountPath"] for m in ctr["volumeMounts"]}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
    cfg_arg = ctr["args"][ctr["args"].index("--config") + 1]
    assert cfg_arg == f"{mounts['config']}/streamad.yaml"
    assert vols["models"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert cfg.model.path.startswith(mounts["models"] + "/")
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


# -- systemd ------------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", ["streamad.service", "streamad@.service"])
def test_systemd_unit(unit):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string((DEPLOY / unit).read_text())
    s = cp["Service"]
    assert "streamad run" in s["ExecStart"]
    expected = {"Restart": "on-failure", "RestartPreventExitStatus": "2", "KillSignal": "SIGTERM",
                "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "CapabilityBoundingSet": "", "User": "streamad"}
    assert {k: s.get(k) for k in expected} == expected
    assert int(s["TimeoutStopSec"]) >= 30
    assert "AF_INET" in s["RestrictAddressFamilies"] and s["MemoryMax"]
    assert "/var/lib/streamad" in s["ReadWritePaths"]
    assert cp["Install"]["WantedBy"] == "multi-user.target"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the models (README "Hot model reload")


# -- Dockerfiles --------------------------------------------------------------------------------
def _hadolint() -> str:
    exe = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert exe, "hadolint not installed: pip install -e '.[test]'"
    return exe


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_lints_and_fits(name):
    r = subprocess.run([_hadolint(), "--no-color", str(DEPLOY / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (DEPLOY / name).read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    torch = next(i for i, ln in enumerate(lines) if 'pip install "torch==${TORCH_VERSION}"' in ln)
    assert torch < next(i for i, ln in enumerate(lines) if "pip install ." in ln)  # torch first
    assert "ARG TORCH_VERSION=2.13.0" in lines
    assert "USER 10001:10001" in lines and "EXPOSE 9765" in lines
    assert any(ln.startswith("HEALTHCHECK") for ln in lines) and "/healthz" in text
    for ln in lines:
        if ln.startswith("COPY"):
            for src in ln.split()[1:-1]:
                if not src.startswith("--"):
                    assert (ROOT / src).exists(), f"{name}: COPY source {src} missing"
    baked = C.load(DEPLOY / "compose" / "streamad.yaml")
    assert baked.metrics.port == 9765
    if name == "Dockerfile":
        assert "FROM python:3.11-slim" in lines and "download.pytorch.org/whl/cpu" in text
    else:
        assert re.search(r"nvidia/cuda:[\w.]+-cudnn-runtime-", text) and "whl/cu" in text


def test_dockerignore_keeps_the_context_small():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "models", "tests"} <= set(ignored)


# -- docs ---------------------------------------------------------------------------------------
def test_docs_cover_every_metric_reason_and_file():
    ops = (ROOT / "docs" / "OPERATIONS.md").read_text()
    bases = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in METRIC_NAMES}
    assert [b for b in sorted(bases) if b not in ops] == []
    assert [r for r in REASON_CLASSES if f"`{r}`" not in ops] == []
    readme = (DEPLOY / "README.md").read_text()
    files = [p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*") if p.is_file() and p.name != "README.md"]
    assert [f for f in files if f not in readme] == []
