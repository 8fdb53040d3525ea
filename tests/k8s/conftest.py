"""The Kubernetes manifests, rendered with the real kubectl and checked offline.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
