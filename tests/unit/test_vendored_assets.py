"""The files the API docs load are served by the service itself (no CDN: a blank page offline),
pinned: each is the one scripts/vendor-assets.sh fetched at the version it names, with its licence."""

import hashlib
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "entrypoints/http/static/vendor"


def test_every_vendored_file_is_the_one_fetched_and_summed():
    sums = dict(reversed(line.split("  ", 1)) for line in (VENDOR / "SHA256SUMS").read_text().splitlines())
    files = {f"./{p.relative_to(VENDOR)}" for p in VENDOR.rglob("*") if p.is_file() and p.name != "SHA256SUMS"}
    assert set(sums) == files
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, f"{name} changed: run scripts/vendor-assets.sh"


def test_each_vendored_package_ships_its_licence_and_a_pinned_version():
    versions = [line.split() for line in (VENDOR / "VERSIONS").read_text().splitlines()]
    assert {(package, licence) for package, _, _, licence in versions} == {("swagger-ui-dist", "Apache-2.0"), ("redoc", "MIT")}
    assert all(version[0].isdigit() and version.count(".") == 2 for _, version, _, _ in versions)
    for directory in ("swagger-ui", "redoc"):
        assert (VENDOR / directory / "LICENSE").stat().st_size > 500
