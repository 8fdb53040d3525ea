import dataclasses
from pathlib import Path

import pytest

from paymesh.config import Settings
from paymesh_tools.dev_pki import ensure_dev_pki


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory) -> Path:
    """The dev PKI, generated once per test session by the project's own command code."""
    path = tmp_path_factory.mktemp("pki")
    ensure_dev_pki(path)
    return path


@pytest.fixture
def settings(tmp_path, pki_dir) -> Settings:
    return dataclasses.replace(
        Settings.from_env(), home=tmp_path, pki_dir=pki_dir, data_dir=tmp_path / "data", grace_seconds=2.0
    )
