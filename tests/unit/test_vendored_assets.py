"""What custsync shows in a browser loads nothing from another host (a CDN is a blank page offline):
the API docs' Swagger UI and Redoc, and the documentation site's mermaid, are vendored, pinned
(each file is the one scripts/vendor-assets.sh fetched at the version it names) and licensed."""

import hashlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDORED = {
    ROOT / "entrypoints/http/static/vendor": {"swagger-ui-dist": ("Apache-2.0", "swagger-ui"), "redoc": ("MIT", "redoc")},
    ROOT / "docs/assets/vendor": {"mermaid": ("MIT", "mermaid")},
}


@pytest.mark.parametrize("vendor", list(VENDORED), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_vendored_file_is_the_one_fetched_and_summed(vendor):
    sums = dict(reversed(line.split("  ", 1)) for line in (vendor / "SHA256SUMS").read_text().splitlines())
    files = {f"./{p.relative_to(vendor)}" for p in vendor.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(sums) == files
    for name, digest in sums.items():
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, f"{name} changed: run scripts/vendor-assets.sh"


@pytest.mark.parametrize("vendor", list(VENDORED), ids=lambda p: str(p.relative_to(ROOT)))
def test_each_vendored_package_ships_its_licence_and_a_pinned_version(vendor):
    versions = [line.split() for line in (vendor / "VERSIONS").read_text().splitlines()]
    expected = VENDORED[vendor]
    assert {package: licence for package, _, _, licence in versions} == {p: lic for p, (lic, _) in expected.items()}
    assert all(version[0].isdigit() and version.count(".") == 2 for _, version, _, _ in versions)
    for _, directory in expected.values():
        assert (vendor / directory / "LICENSE").stat().st_size > 500
