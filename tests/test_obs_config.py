"""Observability config without a cluster: the committed files are what the generator makes, promtool
accepts them and every alert rule passes its unit tests, and dashboards and rules only read metrics
that exist (and cover every metric that does)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cluster import observability as obs
from cluster.cli import app as cli
from deployments import metrics as m

METRICS_SOURCE = Path(m.__file__).read_text()


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([obs.promtool_binary(), *args], capture_output=True, text=True, cwd=obs.PROM_DIR)


@pytest.mark.parametrize("path", sorted(obs.generated_files()), ids=lambda p: str(p.relative_to(obs.REPO_ROOT)))
def test_committed_file_is_current(path: Path) -> None:
    assert path.is_file(), f"{path} missing: run `storefleet obs generate`"
    assert path.read_text() == obs.generated_files()[path], f"{path} is stale: run `storefleet obs generate`"


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "config", "prometheus-kuberay.yml"),
        ("check", "rules", "rules/storefleet-recording.yml", "rules/storefleet-alerts.yml"),
        ("test", "rules", "tests/storefleet-alerts-test.yml", "tests/storefleet-recording-test.yml"),
    ],
    ids=lambda a: " ".join(a[:2]) + " " + a[2],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    res = _promtool(*args)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_rule_has_a_unit_test() -> None:
    tests = yaml.safe_load((obs.PROM_DIR / "tests" / "storefleet-alerts-test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert tested == {a.alert for a in obs.alerts()}, "an alert rule is never shown firing in a promtool test"


def _reads() -> dict[str, set[str]]:
    """Series each rule and panel reads: what has to exist for it to show anything."""
    out: dict[str, set[str]] = {}
    for r in obs.RECORDS:
        out[f"record {r.record}"] = obs.metric_names_in(r.expr)
    for a in obs.alerts():
        out[f"alert {a.alert}"] = obs.metric_names_in(a.expr)
    for make in obs.DASHBOARDS:
        d = make()
        for i, (title, expr) in enumerate(obs.panel_queries(d)):
            out[f"{d.uid} / {title} #{i}"] = obs.metric_names_in(expr)
    return out


def _known() -> set[str]:
    names = {s.exported + suffix for s in m.CATALOGUE.values()
             for suffix in (("_bucket", "_sum", "_count") if s.kind == "histogram" else ("",))}
    return names | set(obs.EXTERNAL_METRICS) | {r.record for r in obs.RECORDS}


def test_rules_and_panels_read_only_known_metrics() -> None:
    unknown = {where: sorted(names - _known()) for where, names in _reads().items() if names - _known()}
    assert not unknown, unknown


@pytest.mark.parametrize("exported", obs.EXTERNAL_METRICS)
def test_metrics_of_other_features_are_defined_in_deployments_metrics(exported: str) -> None:
    assert f'"{exported.removeprefix(m.RAY_PREFIX)}"' in METRICS_SOURCE


def test_dashboards_and_alerts_cover_every_catalogued_metric() -> None:
    read = set().union(*_reads().values())
    expanded = set(read)
    for r in obs.RECORDS:  # a panel reading a recording rule reads what the rule reads
        if r.record in read:
            expanded |= obs.metric_names_in(r.expr)
    unused = [s.name for s in m.CATALOGUE.values()
              if not any(n.startswith(s.exported) for n in expanded)]
    assert not unused, f"metrics no panel or alert shows: {unused}"


@pytest.mark.parametrize("make", obs.DASHBOARDS, ids=lambda f: f.__name__)
def test_dashboard_json_is_well_formed(make) -> None:
    d = json.loads(obs.dashboard_json(make()))
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    assert {v["name"] for v in d["templating"]["list"]} >= {"datasource", "store"}
    for p in panels:
        assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] == "row":
            continue
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" and t["expr"] for t in p["targets"]), p["title"]


def test_no_dashboard_panel_mentions_a_visitor() -> None:
    for make in obs.DASHBOARDS:
        for _, expr in obs.panel_queries(make()):
            assert not re.search(r"visitor_id|event_id", expr)


@pytest.mark.parametrize(
    ("name", "kind", "labels", "error"),
    [
        ("camera_fps", "gauge", ("store",), "must start with storefleet_"),
        ("storefleet_x_frames", "counter", ("store",), "end in _total"),
        ("storefleet_x_total", "gauge", ("store",), "end in _total"),
        ("storefleet_x_seconds", "gauge", ("store", "visitor"), "visitor"),
        ("storefleet_x_seconds", "histogram", ("store",), "bucket boundaries"),
        ("storefleet_camera_fps", "gauge", ("store", "camera"), "defined twice"),
    ],
)
def test_spec_refuses_broken_conventions(name: str, kind: m.Kind, labels: tuple[str, ...], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        m.spec(name, kind, "x", labels)


def test_catalogue_labels_are_bounded() -> None:
    for s in m.CATALOGUE.values():
        assert set(s.labels) <= m.ALLOWED_LABELS, s.name


def test_saturation_bar_follows_ray_config(tmp_path: Path) -> None:
    cfg = yaml.safe_load(obs.SERVE_CONFIG.read_text())
    det = next(d for a in cfg["applications"] for d in a.get("deployments", []) if d["name"] == "Detector")
    det["autoscaling_config"]["target_ongoing_requests"] = 11
    path = tmp_path / "ray_config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    saturated = next(a for a in obs.alerts(path) if a.alert == "StoreFleetDetectorSaturated")
    assert "> 11\n" in saturated.expr


@pytest.mark.parametrize(("args", "target"), [([], "127.0.0.1:8080"),
                                              (["--metrics-port", "19450", "--host", "10.1.2.3"], "10.1.2.3:19450")])
def test_cli_prints_a_prometheus_config_for_a_metrics_port(args: list[str], target: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["obs", "prometheus-config", *args])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(res.stdout)
    assert cfg["scrape_configs"][0]["static_configs"][0]["targets"] == [target]
    assert all(Path(f).is_file() for f in cfg["rule_files"])  # absolute: usable from any folder
    (tmp_path / "p.yml").write_text(res.stdout)
    check = _promtool("check", "config", str(tmp_path / "p.yml"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_cli_check_and_generate_check_pass_on_the_committed_files() -> None:
    for cmd in (["obs", "generate", "--check"], ["obs", "check"]):
        res = CliRunner().invoke(cli, cmd)
        assert res.exit_code == 0, res.output


def test_push_payloads_are_grafana_save_requests() -> None:
    from cluster.cli_obs import push_payloads

    bodies = push_payloads("storefleet")
    assert {b["dashboard"]["uid"] for b in bodies} == {make().uid for make in obs.DASHBOARDS}
    assert all(b["folderUid"] == "storefleet" and b["overwrite"] and "id" not in b["dashboard"] for b in bodies)


@pytest.mark.parametrize(
    ("expr", "store", "camera", "expected"),
    [
        ('x{store=~"$store"}', ".*", ".*", 'x{store=~".*"}'),
        ('rate(x{store=~"$store", camera=~"$camera"}[$__rate_interval])', "A|B", "C",
         'rate(x{store=~"A|B", camera=~"C"}[1m])'),
    ],
)
def test_expand_substitutes_like_grafana(expr: str, store: str, camera: str, expected: str) -> None:
    assert obs.expand(expr, store=store, camera=camera) == expected
