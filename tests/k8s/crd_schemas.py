"""The custom resources of the manifests (cert-manager's Certificate, CloudNativePG's Cluster, Database
and ScheduledBackup, the Barman Cloud plugin's ObjectStore), validated offline against the real CRDs'
schemas, vendored in tests/k8s/crds/ (one gzip JSON file each: its CRD version's openAPIV3Schema,
descriptions dropped, with a $comment naming the project, release and file it came from).

The API server validates a custom resource by its structural schema and, asked for strict field
validation (kubectl's default since 1.27), refuses a field the schema does not declare; plain
JSON Schema allows them. So every object schema that declares properties and does not keep
unknown fields (x-kubernetes-preserve-unknown-fields) gets additionalProperties: false here.
CEL rules (x-kubernetes-validations) are not evaluated.

Refresh one (the CRD file from the project's repository at a release tag):
    .venv/bin/python -m tests.k8s.crd_schemas CRD.yaml "cloudnative-pg v1.30.0 config/crd/bases/..."
"""

import functools
import gzip
import json
import sys
from pathlib import Path

import jsonschema
import yaml

CRDS = Path(__file__).with_name("crds")
# (apiVersion, kind) -> the vendored file.
VENDORED = {
    ("cert-manager.io/v1", "Certificate"): "cert-manager.io_certificates.v1.json.gz",
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io_clusters.v1.json.gz",
    ("postgresql.cnpg.io/v1", "Database"): "postgresql.cnpg.io_databases.v1.json.gz",
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): "postgresql.cnpg.io_scheduledbackups.v1.json.gz",
    ("barmancloud.cnpg.io/v1", "ObjectStore"): "barmancloud.cnpg.io_objectstores.v1.json.gz",
}


def is_custom(obj: dict) -> bool:
    return (obj.get("apiVersion"), obj.get("kind")) in VENDORED


def strict(schema):
    """The schema with unknown fields refused wherever the API server's structural schema would
    (see the module's docstring)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) if key not in ("enum", "required", "default", "example") else value
           for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads(gzip.decompress((CRDS / VENDORED[(api_version, kind)]).read_bytes()))
    schema = strict(schema)
    # The object a manifest holds is what the API server receives: metadata as rendered (name,
    # namespace, labels); apiVersion and kind fixed by the file.
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {"type": "object", "required": ["name", "namespace"]}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def validate(obj: dict) -> None:
    """Raises jsonschema.ValidationError (the most relevant error) if obj does not fit its CRD."""
    errors = sorted(validator(obj["apiVersion"], obj["kind"]).iter_errors(obj), key=jsonschema.exceptions.relevance)
    if errors:
        raise errors[0]


def without_descriptions(schema):
    if isinstance(schema, list):
        return [without_descriptions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    # (a field named description has a schema, not a string, as its value: kept)
    return {key: without_descriptions(value) for key, value in schema.items()
            if not (key == "description" and isinstance(value, str))}


def vendor(crd_file: Path, source: str) -> Path:
    """Writes the served version's openAPIV3Schema of crd_file to crds/, named as VENDORED names it."""
    (crd,) = [d for d in yaml.safe_load_all(crd_file.read_text()) if d]
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    api_version = f"{group}/{version['name']}"
    schema = without_descriptions(version["schema"]["openAPIV3Schema"])
    schema = {"$comment": f"openAPIV3Schema of {kind} ({api_version}) from {source}; descriptions dropped",
              **schema}
    target = CRDS / VENDORED[(api_version, kind)]
    target.write_bytes(gzip.compress(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode(), mtime=0))
    return target


if __name__ == "__main__":
    print(vendor(Path(sys.argv[1]), sys.argv[2]))
