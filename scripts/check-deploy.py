"""`make deploy-check`: the deployment files, checked by the real tools.

No Docker engine or Kubernetes cluster runs on the machines that build
Choreo, so the Dockerfile, the compose file and the Helm chart are checked by
the tools that do run here (each from PyPI, installed by the Makefile):

- hadolint on the Dockerfile;
- yamllint on every YAML file, and on what the chart renders;
- `docker compose config` (the compose CLI, without an engine);
- the chart linted and rendered by Helm's own SDK (helm-python-sdk), with
  its default values and with ci/production-values.yaml, and every rendered
  manifest validated by kubernetes-validate --strict (the Prometheus
  Operator's kinds, which it has no schema for, by the checks below);
- the alert rules by `promtool check rules` and `promtool test rules`, as
  compose mounts them and as the chart's PrometheusRule carries them; the
  Grafana dashboards parsed and their panels checked (that every query's
  metric is served is the `choreo up` test's part);

and then by Choreo's own binaries: every process, given exactly the
environment compose or the chart gives it, must load its configuration
(`--print-config`) and find nothing on 127.0.0.1, and every variable the
files set must be one the README's configuration table documents.

Usage: python scripts/check-deploy.py BIN_DIR OUT_DIR
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import compose as compose_pkg
import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "choreo"
MONITORING = CHART / "monitoring"
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
TOOLS = Path(sys.executable).parent
# The kubeVersion floor in Chart.yaml, and the newest schema the validator has.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]
SERVICE_PORTS = {"edge": 8080, "order": 8082, "inventory": 8083, "payment": 8084, "shipping": 8085}
SAGA_SERVICES = ["order", "inventory", "payment", "shipping"]
# Compose also runs the payment provider stand-in.
COMPOSE_PORTS = {**SERVICE_PORTS, "provider": 8086}
# What compose and the chart build from the Dockerfile.
COMPOSE_CHOREO = {**{s: s for s in SERVICE_PORTS}, "provider": "provider", "setup": "choreo"}
A_SECRET = "0123456789abcdef" * 4

failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print(f"FAIL {message}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def step(name: str) -> None:
    print(f"== {name}", flush=True)


# --- The README's configuration table ---------------------------------------


def documented_variables() -> tuple[set[str], list[str]]:
    """Every variable named in the README's configuration table, and the
    prefixes it documents (`CHOREO_KAFKA__PROPERTIES__<KEY>`)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    prefixes: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([A-Z][A-Z0-9_<>]*)`", first_cell):
            if "<" in name:
                prefixes.append(name.split("<", 1)[0])
            else:
                names.add(name)
    return names, prefixes


DOCUMENTED, DOCUMENTED_PREFIXES = documented_variables()
# The images' own variables, not Choreo settings.
FOREIGN_PREFIXES = ("KAFKA_", "SCHEMA_REGISTRY_", "POSTGRES_")


def check_documented(where: str, env: dict[str, str]) -> None:
    for name in env:
        if name.startswith(FOREIGN_PREFIXES):
            continue
        known = name in DOCUMENTED or any(name.startswith(p) for p in DOCUMENTED_PREFIXES)
        check(known, f"{where}: {name} is not in the README's configuration table")


# --- Choreo's own binaries, with the environment a deployment gives them ----


def check_loads(where: str, binary: Path, env: dict[str, str], port: int | None) -> None:
    """The process loads its settings from exactly `env`, and they point at
    the deployment's peers, not at the local defaults."""
    out = run([str(binary), "--print-config"], env={"PATH": os.environ["PATH"], **env})
    if out.returncode != 0:
        fail(f"{where}: {binary.name} --print-config failed: {out.stderr.strip()}")
        return
    printed = out.stdout
    for local in ("127.0.0.1", "localhost"):
        check(local not in printed, f"{where}: a setting still points at {local}:\n{printed}")
    settings = json.loads(printed)
    addr = settings.get("http_addr") or settings.get("service", {}).get("http_addr", "")
    if port is not None:
        check(addr == f"0.0.0.0:{port}", f"{where}: listens on {addr!r}, not 0.0.0.0:{port}")


# --- The Dockerfile ----------------------------------------------------------


def dockerfile() -> dict[str, dict[str, str]]:
    step("hadolint Dockerfile")
    out = run([str(TOOLS / "hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")])
    check(out.returncode == 0, f"hadolint:\n{out.stdout}{out.stderr}")
    # Each target's ENV, which the process sees before compose's or the
    # chart's variables.
    targets: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if m := re.match(r"FROM (\S+) AS (\S+)", line):
            base, name = m.groups()
            current = dict(targets.get(base, {}))
            targets[name] = current
        elif m := re.match(r"ENV (\w+)=(\S*)", line):
            current[m.group(1)] = m.group(2)
    for target in set(COMPOSE_CHOREO.values()):
        check(target in targets, f"Dockerfile: no target {target}")
    return targets


# --- compose -----------------------------------------------------------------


def compose(bin_dir: Path, image_env: dict[str, dict[str, str]]) -> None:
    step("docker compose config")
    # The PyPI wheel's `docker-compose` script drops the CLI's exit status
    # (it is always 0), so the CLI itself is run.
    cli = Path(compose_pkg.__file__).parent / "docker-compose"
    base = ["-f", str(COMPOSE_FILE)]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    keys = {
        "CHOREO_AUTH__HS256_SECRET": A_SECRET,
        "CHOREO_INTERNAL_AUTH__SERVICE_SECRET": A_SECRET[::-1],
        "CHOREO_INTERNAL_AUTH__ADMIN_SECRET": A_SECRET.upper(),
    }
    for key in keys:
        without = run(
            [str(cli), *base, "config", "--quiet"],
            env={**env, **{k: v for k, v in keys.items() if k != key}},
        )
        check(
            without.returncode != 0 and key in without.stderr,
            f"compose: without {key}, `config` should fail and name it",
        )
    out = run([str(cli), *base, "config", "--format", "json"], env={**env, **keys})
    if out.returncode != 0:
        fail(f"docker compose config:\n{out.stderr}")
        return
    project = json.loads(out.stdout)
    services = project["services"]
    expected = {"kafka", "schema-registry", "postgres", "otel-collector", "jaeger", "prometheus", *COMPOSE_CHOREO}
    check(expected <= set(services), f"compose: services missing: {sorted(expected - set(services))}")
    check(services["kafka"]["image"].startswith("apache/kafka:"), "compose: Kafka is not the official image")
    check(
        services["kafka"]["environment"].get("KAFKA_PROCESS_ROLES") == "broker,controller",
        "compose: Kafka is not in KRaft mode",
    )
    check(
        services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:"),
        "compose: the Schema Registry is not Confluent's",
    )

    for name, service in services.items():
        # Only the edge faces the network; the rest is for this host's users.
        for published in service.get("ports", []):
            if name != "edge":
                check(
                    published.get("host_ip") == "127.0.0.1",
                    f"compose: {name} publishes port {published.get('published')} beyond 127.0.0.1",
                )
        for dependency, how in service.get("depends_on", {}).items():
            condition = how.get("condition")
            if condition == "service_healthy":
                check(
                    "healthcheck" in services[dependency],
                    f"compose: {name} waits for {dependency} to be healthy, which has no healthcheck",
                )
    for name in [*SAGA_SERVICES, "edge", "provider"]:
        check("healthcheck" in services[name], f"compose: {name} has no healthcheck")
    for name in SAGA_SERVICES:
        depends = services[name].get("depends_on", {})
        check(
            depends.get("setup", {}).get("condition") == "service_completed_successfully",
            f"compose: {name} starts before the topics and schemas exist",
        )
        for peer in ("postgres", "kafka", "schema-registry"):
            check(
                depends.get(peer, {}).get("condition") == "service_healthy",
                f"compose: {name} does not wait for a healthy {peer}",
            )
    for name in SAGA_SERVICES:
        check(
            services["edge"].get("depends_on", {}).get(name, {}).get("condition") == "service_healthy",
            f"compose: the edge does not wait for a healthy {name}",
        )

    init = (ROOT / "compose" / "postgres" / "init-databases.sh").read_text()
    listed = re.search(r"for name in ([\w ]+); do", init)
    created = {f"choreo_{name}" for name in (listed.group(1).split() if listed else [])}
    prometheus = yaml.safe_load((ROOT / "compose" / "prometheus" / "prometheus.yml").read_text())
    scraped = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for name, target in COMPOSE_CHOREO.items():
        service = services[name]
        check(service.get("build", {}).get("target") == target, f"compose: {name} is not built as {target}")
        env = {**image_env.get(target, {}), **{k: str(v) for k, v in service.get("environment", {}).items()}}
        check_documented(f"compose {name}", env)
        if url := env.get("CHOREO_DATABASE_URL"):
            database = url.rsplit("/", 1)[1].split("?")[0]
            check(database in created, f"compose: {name}'s database {database} is not created by the init script")
            role = url.split("://", 1)[1].split("@", 1)[0]
            check(role == database, f"compose: {name} connects as {role}, not as its database's own role")
        check(
            bool(env.get("CHOREO_INTERNAL_AUTH__SERVICE_SECRET")),
            f"compose: {name} has no service key (CHOREO_INTERNAL_AUTH__SERVICE_SECRET)",
        )
        check(
            (name == "edge") != bool(env.get("CHOREO_INTERNAL_AUTH__ADMIN_SECRET")),
            f"compose: {name} should hold the admin key exactly when it is not the edge",
        )
        if name == "setup":
            continue
        port = COMPOSE_PORTS[name]
        probe = " ".join(service["healthcheck"]["test"])
        check(f"localhost:{port}/health/ready" in probe, f"compose: {name}'s healthcheck misses its port {port}")
        if name in SERVICE_PORTS:
            check(f"{name}:{port}" in scraped, f"compose: Prometheus does not scrape {name}:{port}")
        if name != "provider":
            check(
                service.get("stop_grace_period", "") not in ("", "10s"),
                f"compose: {name} keeps the default 10 s stop grace, shorter than its own",
            )
        check_loads(f"compose {name}", bin_dir / f"choreo-{name}", env, port)


    prometheus_service = services["prometheus"]
    mounts = {v.get("source", ""): v.get("target", "") for v in prometheus_service.get("volumes", []) if isinstance(v, dict)}
    check(
        mounts.get(str(MONITORING / "alerts.yml")) == "/etc/prometheus/rules/choreo.yml",
        f"compose: Prometheus does not mount the alert rules: {mounts}",
    )
    check(
        "/etc/prometheus/rules/*.yml" in prometheus.get("rule_files", []),
        "compose: Prometheus does not load its rule files",
    )
    grafana = services.get("grafana", {})
    mounts = {v.get("source", ""): v.get("target", "") for v in grafana.get("volumes", []) if isinstance(v, dict)}
    provisioning = ROOT / "compose" / "grafana" / "provisioning"
    check(mounts.get(str(provisioning)) == "/etc/grafana/provisioning", f"compose: Grafana is not provisioned: {mounts}")
    providers = yaml.safe_load((provisioning / "dashboards" / "choreo.yml").read_text())["providers"]
    dashboards_at = {p["options"]["path"] for p in providers}
    check(
        mounts.get(str(MONITORING / "dashboards")) in dashboards_at,
        f"compose: Grafana's dashboard provider reads {dashboards_at}, not the mounted dashboards ({mounts})",
    )
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    check(
        [d["url"] for d in sources if d["type"] == "prometheus"] == ["http://prometheus:9090"],
        f"compose: Grafana's data source is not compose's Prometheus: {sources}",
    )


# --- Alert rules and dashboards -----------------------------------------------


def promtool(*args: str, cwd: Path | None = None) -> None:
    # Where `make promtool` unpacks it (the Makefile exports the path).
    binary = os.environ.get("CHOREO_PROMTOOL_BIN") or str(Path.home() / ".cache/choreo/prometheus-debian/usr/bin/promtool")
    if not Path(binary).exists():
        fail(f"no promtool at {binary}: `make promtool` unpacks it")
        return
    out = run([binary, *args], cwd=cwd)
    check(out.returncode == 0, f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}")


def alert_rules() -> None:
    step("promtool check rules, promtool test rules")
    promtool("check", "rules", str(MONITORING / "alerts.yml"))
    tests = sorted((MONITORING / "tests").glob("*.test.yml"))
    check(bool(tests), "no promtool unit tests for the alert rules")
    for test in tests:
        promtool("test", "rules", test.name, cwd=test.parent)
    rules = [r for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    readme = (ROOT / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    tested = "\n".join(t.read_text() for t in tests)
    for rule in rules:
        name = rule.get("alert")
        check(bool(name), f"alert rules: a rule without an alert name: {rule}")
        runbook = rule.get("annotations", {}).get("runbook_url", "")
        check(
            runbook.startswith("README.md#") and runbook.split("#", 1)[1] in anchors,
            f"alert rules: {name}'s runbook {runbook!r} is no heading of the README",
        )
        check(f"alertname: {name}\n" in tested, f"alert rules: {name} has no promtool unit test")


def dashboards() -> None:
    step("Grafana dashboards")
    files = sorted((MONITORING / "dashboards").glob("*.json"))
    check(len(files) >= 2, f"dashboards: {files}")
    uids = set()
    for file in files:
        try:
            board = json.loads(file.read_text())
        except json.JSONDecodeError as e:
            fail(f"dashboards: {file.name} does not parse: {e}")
            continue
        uids.add(board.get("uid"))
        variables = {v["name"] for v in board.get("templating", {}).get("list", [])}
        check("datasource" in variables, f"dashboards: {file.name} has no datasource variable")
        ids = [p["id"] for p in board["panels"]]
        check(len(ids) == len(set(ids)), f"dashboards: {file.name} repeats panel ids {ids}")
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            where = f"dashboards: {file.name} panel {panel.get('title')!r}"
            check(panel.get("datasource", {}).get("uid") == "${datasource}", f"{where} does not use the datasource variable")
            targets = panel.get("targets", [])
            check(bool(targets) and all(t.get("expr") for t in targets), f"{where} has no query")
            refs = [t.get("refId") for t in targets]
            check(len(refs) == len(set(refs)), f"{where} repeats refIds {refs}")
            grid = panel.get("gridPos", {})
            check(grid.get("x", 0) + grid.get("w", 0) <= 24, f"{where} is wider than the dashboard")
    check(len(uids) == len(files), f"dashboards: uids {uids} are not one per dashboard")


def check_monitoring(where: str, by_kind: dict[str, dict[str, dict]], values: dict, out_dir: Path) -> None:
    """The chart's ServiceMonitor, PrometheusRule and dashboards, when enabled."""
    monitoring = values.get("monitoring", {})
    rules = by_kind.get("PrometheusRule", {})
    monitors = by_kind.get("ServiceMonitor", {})
    config_maps = by_kind.get("ConfigMap", {})
    enabled = lambda part: monitoring.get(part, {}).get("enabled", False)  # noqa: E731
    check(bool(rules) == enabled("prometheusRule"), f"{where}: PrometheusRule {sorted(rules)}")
    check(bool(monitors) == enabled("serviceMonitor"), f"{where}: ServiceMonitor {sorted(monitors)}")
    for name, rule in rules.items():
        source = yaml.safe_load((MONITORING / "alerts.yml").read_text())
        check(rule["spec"] == source, f"{where}: PrometheusRule {name} is not monitoring/alerts.yml")
        file = out_dir / f"{where.replace(' ', '-')}-{name}.rules.yml".replace("(", "").replace(")", "")
        file.write_text(yaml.safe_dump(rule["spec"]))
        promtool("check", "rules", str(file))
    for name, monitor in monitors.items():
        check(monitor["spec"].get("jobLabel") == "app.kubernetes.io/component", f"{where}: {name} names its jobs otherwise")
        for service in by_kind.get("Service", {}).values():
            labels = service["metadata"]["labels"]
            selected = all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
            component = labels.get("app.kubernetes.io/component")
            check(selected, f"{where}: {name} does not scrape {service['metadata']['name']}")
            check(component in SERVICE_PORTS, f"{where}: {service['metadata']['name']}'s job would be {component}")
    boards = {n: c for n, c in config_maps.items() if c["metadata"]["labels"].get(monitoring.get("dashboards", {}).get("label", "grafana_dashboard"))}
    check(bool(boards) == enabled("dashboards"), f"{where}: dashboard ConfigMaps {sorted(boards)}")
    for name, board in boards.items():
        shipped = {f.name: f.read_text() for f in (MONITORING / "dashboards").glob("*.json")}
        check(board["data"] == shipped, f"{where}: {name} does not hold monitoring/dashboards as they are")


# --- Helm --------------------------------------------------------------------


def helm_variant(label: str, values: dict, bin_dir: Path, out_dir: Path) -> list[Path]:
    step(f"helm lint ({label})")
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    for message in report["messages"]:
        # 1 is INFO ("icon is recommended"); 2 WARNING and 3 ERROR fail.
        if message["severity"] >= 2:
            fail(f"helm lint ({label}): {message['path']}: {message['error']}")
    for error in report.get("errors") or []:
        fail(f"helm lint ({label}): {error}")

    step(f"helm template ({label})")
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values=values, name="shop", namespace="shop", is_install=True)
    folder = out_dir / f"helm-{label}"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    objects = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        file = folder / Path(path).name
        file.write_text(text)
        files.append(file)
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    check("choreo/templates/NOTES.txt" in manifests, f"helm ({label}): no NOTES.txt")
    notes = manifests.get("choreo/templates/NOTES.txt", "")
    check("/v1/orders" in notes, f"helm ({label}): NOTES.txt does not say how to place an order")

    # The Prometheus Operator's kinds: no schema in the validator (checked
    # in check_monitoring instead).
    operator = [f for f in files if "monitoring.coreos.com/" in f.read_text()]
    validated = [f for f in files if f not in operator]
    for version in KUBE_VERSIONS:
        step(f"kubernetes-validate --strict -k {version} ({label})")
        out = run([str(TOOLS / "kubernetes-validate"), "--strict", "--quiet", "-k", version, *map(str, validated)])
        check(out.returncode == 0, f"kubernetes-validate {version} ({label}):\n{out.stdout}{out.stderr}")

    check_objects(label, objects, values, bin_dir, out_dir)
    return files


def check_objects(label: str, objects: list[dict], values: dict, bin_dir: Path, out_dir: Path) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    config_maps = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})
    existing_secret = values.get("secrets", {}).get("existingSecret", "")
    deployments = by_kind.get("Deployment", {})
    pdbs = by_kind.get("PodDisruptionBudget", {})
    jobs = by_kind.get("Job", {})
    where = f"helm ({label})"

    check(
        {f"shop-choreo-{c}" for c in SERVICE_PORTS} == set(deployments),
        f"{where}: Deployments {sorted(deployments)}",
    )
    for name in (f"shop-choreo-migrate-{s}" for s in SAGA_SERVICES):
        check(name in jobs, f"{where}: no migration job {name}")
    check("shop-choreo-topics-and-schemas" in jobs, f"{where}: no topics and schemas job")
    def hooks(obj: dict) -> set[str]:
        return set(filter(None, obj["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")))

    for name, job in jobs.items():
        check({"pre-install", "pre-upgrade"} <= hooks(job), f"{where}: job {name} is not a pre-install/pre-upgrade hook")
        check(len(name) <= 63, f"{where}: job name {name} is longer than 63")
        # What a hook job reads must be a hook made before it; what a
        # Deployment reads must be a release resource (a rollback restores it).
        for container in job["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = config_maps.get(source["configMapRef"]["name"])
                if ref is not None:
                    check(bool(hooks(ref)), f"{where}: job {name} reads ConfigMap {ref['metadata']['name']}, which is not a hook")
    for name, deployment in deployments.items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = config_maps.get(source["configMapRef"]["name"])
                if ref is not None:
                    check(not hooks(ref), f"{where}: {name} reads ConfigMap {ref['metadata']['name']}, a hook")
            for entry in container.get("env", []):
                secret = secrets.get(entry.get("valueFrom", {}).get("secretKeyRef", {}).get("name", ""))
                if secret is not None:
                    check(not hooks(secret), f"{where}: {name} reads Secret {secret['metadata']['name']}, a hook")
    # The hooks' copy of the Secret must hold the keys the pods hold, or
    # the setup job's calls would be refused.
    copies = [obj.get("stringData", {}) for obj in secrets.values()]
    for key in ("internal-service-secret", "internal-admin-secret"):
        values_seen = {c[key] for c in copies if key in c}
        check(len(values_seen) <= 1, f"{where}: the Secrets disagree on {key}")
    for name in ("shop-choreo-edge",):
        check(name in by_kind.get("Service", {}), f"{where}: no Service for the edge")
    check_monitoring(where, by_kind, values, out_dir)

    def pod_env(pod: dict, container: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            ref = source["configMapRef"]["name"]
            if ref not in config_maps:
                fail(f"{where}: {container['name']} reads ConfigMap {ref}, which the chart does not make")
                continue
            env.update(config_maps[ref]["data"])
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = entry["value"]
                continue
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref["name"] == existing_secret:
                env[entry["name"]] = "from-the-existing-secret"
            elif ref["name"] in secrets and ref["key"] in secrets[ref["name"]].get("stringData", {}):
                env[entry["name"]] = secrets[ref["name"]]["stringData"][ref["key"]] or "empty"
            else:
                fail(f"{where}: {container['name']} reads {ref['name']}/{ref['key']}, which the chart does not make")
        mounts = {m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"] for v in pod.get("volumes", [])}
        check(mounts <= volumes, f"{where}: {container['name']} mounts {sorted(mounts - volumes)}, not in its pod")
        if "CHOREO_KAFKA__PROPERTIES__SSL_CA_LOCATION" in env and container["name"] != "migrate":
            check("kafka-ca" in mounts, f"{where}: {container['name']} names the broker's CA but does not mount it")
        if "sslrootcert=" in env.get("CHOREO_DATABASE_URL", ""):
            check("postgres-ca" in mounts, f"{where}: {container['name']} names the database's CA but does not mount it")
        return env

    for component, port in SERVICE_PORTS.items():
        deployment = deployments.get(f"shop-choreo-{component}")
        if deployment is None:
            continue
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = pod_env(pod, container)
        check_documented(f"{where} {component}", env)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        check(ports.get("http") == port, f"{where}: {component} exposes {ports}, not http {port}")
        for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
            got = container.get(probe, {}).get("httpGet", {})
            check(got.get("path") == path and got.get("port") == "http", f"{where}: {component}'s {probe} is {got}")
        grace = float(env.get("CHOREO_SHUTDOWN_GRACE_SECONDS", "30"))
        check(
            pod.get("terminationGracePeriodSeconds", 30) > grace,
            f"{where}: {component} is killed before its own {grace} s grace is over",
        )
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: {component} may run as root")
        check(f"shop-choreo-{component}" in pdbs, f"{where}: {component} has no PodDisruptionBudget")
        check_loads(f"{where} {component}", bin_dir / f"choreo-{component}", env, port)
        # Who signs and who checks (README, Security model).
        check(bool(env.get("CHOREO_INTERNAL_AUTH__SERVICE_SECRET")), f"{where}: {component} has no service key")
        check(
            (component == "edge") != bool(env.get("CHOREO_INTERNAL_AUTH__ADMIN_SECRET")),
            f"{where}: {component} should hold the admin key exactly when it is not the edge",
        )
        if values.get("networkPolicy", {}).get("enabled", True):
            policy = by_kind.get("NetworkPolicy", {}).get(f"shop-choreo-{component}")
            check(policy is not None, f"{where}: {component} has no NetworkPolicy")
            if policy is not None and component != "edge":
                sources = [peer for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])]
                edge = {"podSelector": {"matchLabels": {**deployments["shop-choreo-edge"]["spec"]["selector"]["matchLabels"]}}}
                check(bool(sources) and edge in sources, f"{where}: {component}'s NetworkPolicy does not admit the edge, or admits anyone: {sources}")
                check(
                    all(rule.get("from") for rule in policy["spec"].get("ingress", [])),
                    f"{where}: {component}'s NetworkPolicy has an ingress rule open to every source",
                )

    for service in SAGA_SERVICES:
        job = jobs.get(f"shop-choreo-migrate-{service}")
        if job is None:
            continue
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        check(container.get("args") == ["--migrate"], f"{where}: the {service} migration job runs {container.get('args')}")
        check(container["image"].rsplit(":", 1)[0].endswith(f"/{service}"), f"{where}: the {service} migration job runs {container['image']}")
        check_loads(f"{where} migrate-{service}", bin_dir / f"choreo-{service}", pod_env(pod, container), None)
    setup = jobs.get("shop-choreo-topics-and-schemas")
    if setup is not None:
        pod = setup["spec"]["template"]["spec"]
        steps = [c.get("args") for c in pod.get("initContainers", []) + pod["containers"]]
        check(steps == [["topics"], ["schemas"]], f"{where}: the setup job runs {steps}")
        for container in pod.get("initContainers", []) + pod["containers"]:
            check_documented(f"{where} setup", pod_env(pod, container))


# --- yamllint ------------------------------------------------------------------


def yamllint(files: list[Path], config: Path) -> None:
    out = run([str(TOOLS / "yamllint"), "--strict", "-c", str(config), *map(str, files)])
    check(out.returncode == 0, f"yamllint:\n{out.stdout}{out.stderr}")


def main() -> int:
    bin_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    for service in [*SERVICE_PORTS, "provider"]:
        if not (bin_dir / f"choreo-{service}").exists():
            print(f"{bin_dir}/choreo-{service} is not built (`cargo build --workspace --bins`)")
            return 2
    out_dir.mkdir(parents=True, exist_ok=True)

    step("yamllint (the repository's YAML)")
    sources = [
        p
        for p in ROOT.rglob("*.y*ml")
        if p.suffix in (".yaml", ".yml")
        and not any(part in ("target", ".git", ".choreo", "node_modules") for part in p.relative_to(ROOT).parts)
        # Go templates, not YAML until rendered; their output is linted below.
        and CHART / "templates" not in p.parents
    ]
    yamllint(sources, ROOT / ".yamllint.yaml")

    image_env = dockerfile()
    compose(bin_dir, image_env)
    alert_rules()
    dashboards()

    defaults: dict = {}
    production = helm.values_from_yaml((CHART / "ci" / "production-values.yaml").read_text())
    rendered = helm_variant("default", defaults, bin_dir, out_dir)
    rendered += helm_variant("production", production, bin_dir, out_dir)
    step("yamllint (what the chart renders)")
    yamllint(rendered, ROOT / "scripts" / "yamllint-rendered.yaml")

    step("the chart refuses bad values")
    with helm.Chart.load(str(CHART)) as chart:
        for bad, says in [
            ({"order": {"replicas": "two"}}, "/order/replicas"),
            ({"kafka": {"bootstrapservers": "kafka:9092"}}, "bootstrapservers"),
            ({"auth": {"hs256Secret": "short"}}, "hs256Secret"),
            ({"kafka": {"sasl": {"enabled": True}}}, "kafka.sasl.password"),
            # Helm would write 10485760 as 1.048576e+07.
            ({"kafka": {"properties": {"message.max.bytes": 10485760}}}, "message.max.bytes"),
            ({"order": {"env": {"CHOREO_MAX_WAIT_SECONDS": 30}}}, "CHOREO_MAX_WAIT_SECONDS"),
        ]:
            try:
                chart.render(values=bad, name="shop", namespace="shop")
                fail(f"helm: {bad} rendered")
            except helm.HelmError as e:
                check(says in str(e), f"helm: {bad} failed without naming {says}: {e}")

    if failures:
        print(f"\n{len(failures)} deployment check(s) failed")
        return 1
    print("\ndeployment files: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
