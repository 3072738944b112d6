"""Scrape /metrics through a real client and read it with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """Every sample of one scrape, by sample name and labels."""

    samples: dict[tuple[str, Labels], float]
    types: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        """Parse the text exposition format."""
        samples: dict[tuple[str, Labels], float] = {}
        types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in samples, f"duplicate series {key}"
                samples[key] = sample.value
        return cls(samples, types)

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None."""
        return self.samples.get((name, frozenset(labels.items())))

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of that name with its labels."""
        return [(dict(k[1]), v) for k, v in self.samples.items() if k[0] == name]

    def by(self, name: str, *keys: str, **where: str) -> dict[tuple[str, ...], float]:
        """Samples of ``name`` matching ``where``, summed by the values of ``keys`` (PromQL's
        ``sum by``)."""
        result: dict[tuple[str, ...], float] = {}
        for labels, value in self.series(name):
            if all(labels.get(k) == v for k, v in where.items()):
                key = tuple(labels[k] for k in keys)
                result[key] = result.get(key, 0.0) + value
        return result


def scrape(client: Any, token: str) -> Scrape:
    """GET /metrics with a bearer token; fails on anything but 200 text."""
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain"), answer.headers
    return Scrape.parse(answer.text)


def assert_histogram_consistent(result: Scrape, name: str, **labels: str) -> None:
    """Buckets never decrease, and "+Inf" equals _count."""
    buckets = sorted(
        (float(found["le"]), v)
        for found, v in result.series(f"{name}_bucket")
        if {k: found.get(k) for k in labels} == labels
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), buckets
    assert buckets[-1][0] == float("inf")
    assert buckets[-1][1] == result.value(f"{name}_count", **labels)
