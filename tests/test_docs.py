"""Docs that are generated must match the code they describe."""

from pathlib import Path

from cluster.config_docs import render

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text().rstrip("\n")
    assert committed == render().rstrip("\n"), "run: storefleet config docs > docs/configuration.md"
