"""The contracts from a second language: a Node @grpc/grpc-js client against the real mesh.

Beside the session's pki_dir and settings (tests/conftest.py), its fixtures: none of its own yet."""
