"""Reading a Prometheus text exposition back (``GET /metrics``) in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 when there are none)."""
        return sum(s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items())

    def label_values(self) -> set[str]:
        """Every value of custsync's own labels (histogram bounds aside)."""
        return {v for s in self.samples if s.name.startswith("custsync_") for k, v in s.labels.items() if k != "le"}


async def scrape(http) -> Scrape:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return Scrape(response.text)
