"""What reading insight-agent's state costs a preview: decoding Helm's release record, loading the
local repository index, planning the Release, reading the chart's switches from its templates, and
parsing the rendered FluentBit config for the inputs that read our log.

    python benchmarks/bench_release_plan.py [--charts 60] [--versions 80] [--manifest-kb 400] [--templates 150]

Prints numbers; it is not a test. The index is synthetic but shaped like a real chart repository's
(`helm repo index` fields per version); the release record carries a rendered manifest of the given
size, as a real insight-agent record does (its templates and manifest dominate the Secret).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.insight_agent.chart import ChartSource, chart_directory_source, read_switches  # noqa: E402
from components.insight_agent.fluent_bit import collection, configmap_inputs  # noqa: E402
from components.insight_agent.helm_state import HelmRepositories, decode_release, release_from_json  # noqa: E402
from components.insight_agent.plan import plan_release  # noqa: E402
from components.settings import InsightAgentSettings  # noqa: E402


def best_of(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--charts", type=int, default=60)
    ap.add_argument("--versions", type=int, default=80)
    ap.add_argument("--manifest-kb", type=int, default=400)
    ap.add_argument("--templates", type=int, default=150)
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-release-plan-"))
    (base / "cache").mkdir()
    (base / "repositories.yaml").write_text(yaml.safe_dump(
        {"repositories": [{"name": "insight-release", "url": "https://charts.example/insight"}]}))
    names = ["insight-agent"] + [f"chart-{i}" for i in range(a.charts - 1)]
    entries = {n: [{"apiVersion": "v2", "name": n, "version": f"0.{v // 10}.{v % 10}", "appVersion": f"v0.{v}",
                    "created": "2026-01-01T00:00:00Z", "description": "x" * 80, "digest": "0" * 64,
                    "urls": [f"https://charts.example/insight/{n}-0.{v}.tgz"]} for v in range(a.versions)]
               for n in names}
    index = base / "cache/insight-release-index.yaml"
    index.write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries}))
    # The stand-in chart's templates, repeated to a real chart's count (each one ~2-4 KB of Go template).
    fixture = chart_directory_source(str(REPO / "tests/fixtures/insight-agent"))
    templates = [{"name": f"templates/t{i}-{n}", "data": base64.b64encode(t.encode()).decode()}
                 for i in range(a.templates // len(fixture.templates or ()) + 1)
                 for n, t in fixture.templates or ()][:a.templates]
    doc = {"name": "insight-agent", "namespace": "insight-system", "version": 9, "info": {"status": "deployed"},
           "chart": {"metadata": {"name": "insight-agent", "version": "0.7.9"}, "values": dict(fixture.values),
                     "templates": templates},
           "config": {"fluent-bit": {"image": {"repository": "r"}}}, "manifest": os.urandom(a.manifest_kb * 512).hex()}
    record = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(doc).encode()))).decode()
    env = {"HELM_REPOSITORY_CONFIG": str(base / "repositories.yaml"), "HELM_REPOSITORY_CACHE": str(base / "cache")}
    settings = InsightAgentSettings()

    decode_s = best_of(lambda: release_from_json(decode_release(record)))
    installed = release_from_json(decode_release(record))

    def plan_cold() -> None:
        from components.insight_agent import helm_state

        helm_state._index_versions.cache_clear()
        plan_release(settings, installed, HelmRepositories.load(env), True)

    cold_s = best_of(plan_cold)
    warm_s = best_of(lambda: plan_release(settings, installed, HelmRepositories.load(env), True))
    source = ChartSource(installed.chart_version, installed.chart_values, installed.templates, "record")
    switches_s = best_of(lambda: read_switches(source, None, None, "bench"))
    conf = (REPO / "tests/fixtures/insight-agent/templates/fluent-bit-configmap.yaml").read_text()
    ours = "/var/log/kubernetes/audit/kube-apiserver-audit.log"
    check_s = best_of(lambda: collection(configmap_inputs({"fluent-bit.conf": conf * 20}), ours))
    print(json.dumps({
        "chart_templates": len(installed.templates or ()), "read_switches_ms": round(switches_s * 1000, 2),
        "configmap_inputs": len(configmap_inputs({"fluent-bit.conf": conf * 20})),
        "configmap_parse_and_match_ms": round(check_s * 1000, 2),
        "index_bytes": index.stat().st_size, "index_versions": a.charts * a.versions,
        "release_record_bytes": len(record), "decode_release_ms": round(decode_s * 1000, 2),
        "plan_with_index_parse_ms": round(cold_s * 1000, 2), "plan_index_cached_ms": round(warm_s * 1000, 3),
        "yaml_c_loader": hasattr(yaml, "CSafeLoader"),
    }, indent=1))


if __name__ == "__main__":
    main()
