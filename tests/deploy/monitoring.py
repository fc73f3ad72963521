"""What the monitoring tests read: metric names in PromQL, a Prometheus endpoint's samples, a dev server
with the backlog gauges on."""

from __future__ import annotations

import re
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from cli.devserver import DevServer

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are neither functions, keywords nor labels."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    bare = re.sub(r"\{[^}]*\}", " ", bare)  # label matchers
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # ranges
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", bare):
        if match[2] is None and match[1] not in PROMQL_WORDS:
            names.add(match[1])
    return names


class BacklogDevServer(DevServer):
    """The dev server with the backlog gauges on, as deploy/temporal/dynamicconfig turns them on in compose."""

    def command(self) -> list[str]:
        return [*super().command(), "--dynamic-config-value", 'matching.backlogMetricsEmitInterval="1s"']


def scrape(url: str) -> dict[str, dict[str, set[str]]]:
    """{sample name: {label: values}} of a Prometheus endpoint."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = samples.setdefault(sample.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
    return samples
