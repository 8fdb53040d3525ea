"""prod's PostgreSQL (k8s/components/postgres): the CloudNativePG cluster is replicated synchronously
across zones and archives its WAL; each store's role has its database, its certificate and exactly
one workload; pg_hba admits certificates only. Then the real thing: the rendered Certificates issued
by a CA of the test's, a real PostgreSQL server with the Cluster's pg_hba lines, and each workload's
rendered URL logs in as its role to its database (verify-full), while another role's certificate,
a password, plaintext and another database are refused."""

import datetime as dt
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import jsonschema
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from psycopg.conninfo import conninfo_to_dict

from paymesh_tools.local_postgres import SUPERUSER, UNPRIVILEGED_USER, LocalPostgres
from tests.k8s.test_k8s_build import validate
from tests.k8s.manifests import of_kind, render, workloads

DATABASE_ISSUER = {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "paymesh-postgres-ca"}
NAMESPACE = "paymesh"


def prod():
    return render("prod")


def the_cluster(objects) -> dict:
    (cluster,) = of_kind(objects, "Cluster")
    return cluster


def certificates_by_secret(objects) -> dict[str, dict]:
    return {c["spec"]["secretName"]: c for c in of_kind(objects, "Certificate")}


def container(workload) -> dict:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def store_clients(objects) -> dict[str, dict]:
    """workload name -> its URL's parameters (libpq's own parse), for each workload given one."""
    clients = {}
    for workload in workloads(objects):
        urls = [e["value"] for e in container(workload).get("env", []) if e["name"].endswith("_DATABASE_URL")]
        if urls:
            (url,) = urls
            clients[workload["metadata"]["name"]] = conninfo_to_dict(url)
    return clients


def mounted_certificate(objects, workload_name: str, files: dict) -> dict:
    """The Certificate whose Secret is mounted, read-only, where the URL's ssl* files are."""
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] == workload_name]
    folders = {str(Path(files[key]).parent) for key in ("sslrootcert", "sslcert", "sslkey")}
    (folder,) = folders
    (mount,) = [m for m in container(workload)["volumeMounts"] if m["mountPath"] == folder]
    assert mount["readOnly"] is True
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    (source,) = volume["projected"]["sources"]
    paths = {item["key"]: f"{folder}/{item['path']}" for item in source["secret"]["items"]}
    assert paths == {"ca.crt": files["sslrootcert"], "tls.crt": files["sslcert"], "tls.key": files["sslkey"]}
    return certificates_by_secret(objects)[source["secret"]["name"]]


def test_the_cluster_commits_on_two_zones_before_an_answer_and_archives_its_wal():
    objects = prod()
    cluster = the_cluster(objects)
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["postgresql"]["synchronous"] == {"method": "any", "number": 1, "dataDurability": "required",
                                                 "failoverQuorum": True}
    assert spec["affinity"] == {"enablePodAntiAffinity": True, "podAntiAffinityType": "required",
                                "topologyKey": "topology.kubernetes.io/zone"}
    assert spec["enableSuperuserAccess"] is False
    assert "ssl_min_protocol_version" not in spec["postgresql"].get("parameters", {})  # its default: TLS 1.3
    assert spec["storage"]["storageClass"] == spec["walStorage"]["storageClass"] == "paymesh-retain"
    (archiver,) = [p for p in spec["plugins"] if p.get("isWALArchiver")]
    (store,) = of_kind(objects, "ObjectStore")
    assert archiver["name"] == "barman-cloud.cloudnative-pg.io"
    assert archiver["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert store["spec"]["configuration"]["destinationPath"].startswith("gs://")
    assert "SITE" not in store["spec"]["configuration"]["destinationPath"]  # prod names its bucket
    (nightly,) = of_kind(objects, "ScheduledBackup")
    assert nightly["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert nightly["spec"]["method"] == "plugin" and nightly["spec"]["pluginConfiguration"]["name"] == archiver["name"]


def test_the_database_certificates_are_from_its_own_ca_and_the_mesh_ones_are_not():
    objects = prod()
    certificates = certificates_by_secret(objects)
    tls = the_cluster(objects)["spec"]["certificates"]
    for secret in tls.values():
        assert certificates[secret]["spec"]["issuerRef"] == DATABASE_ISSUER
    assert certificates[tls["replicationTLSSecret"]]["spec"]["commonName"] == "streaming_replica"
    assert "server auth" in certificates[tls["serverTLSSecret"]]["spec"]["usages"]
    for certificate in certificates.values():  # a mesh identity is never a database login, nor the reverse
        from_database_ca = certificate["spec"]["issuerRef"] == DATABASE_ISSUER
        assert from_database_ca != bool(certificate["spec"].get("uris"))


def test_each_role_has_its_database_its_certificate_and_one_workload_and_no_password():
    objects = prod()
    cluster = the_cluster(objects)
    name = cluster["metadata"]["name"]
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"]["owner"] for d in of_kind(objects, "Database")
                 if d["spec"]["cluster"]["name"] == name}
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    databases[initdb["database"]] = initdb["owner"]
    server = certificates_by_secret(objects)[cluster["spec"]["certificates"]["serverTLSSecret"]]
    clients = store_clients(objects)
    assert sorted(clients) == sorted(["core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations",
                                      "payment-router-digital", "payment-router-atm", "payment-router-agent-store"])
    users = []
    for workload, url in clients.items():
        user = url["user"]
        users.append(user)
        assert url["sslmode"] == "verify-full" and "password" not in url, workload
        assert url["host"] == f"{name}-rw.{NAMESPACE}.svc.cluster.local" and url["port"] == "5432"
        assert url["host"] in server["spec"]["dnsNames"]  # what verify-full checks
        assert url["target_session_attrs"] == "read-write"  # never a demoted primary, mid-failover
        # A primary gone with its node: the connection fails in seconds (then reopened), not minutes.
        assert int(url["tcp_user_timeout"]) <= 10_000 and url["keepalives_idle"] == "5"
        assert url["dbname"] == user and databases[user] == user  # its own database, which it owns
        role = roles[user]
        assert role["login"] is True and role["disablePassword"] is True and role["ensure"] == "present"
        assert not {"superuser", "createrole", "createdb", "replication", "bypassrls"} & {
            k for k, v in role.items() if v is True}
        certificate = mounted_certificate(objects, workload, url)
        assert certificate["spec"]["commonName"] == user and certificate["spec"]["issuerRef"] == DATABASE_ISSUER
        assert "client auth" in certificate["spec"]["usages"] and "server auth" not in certificate["spec"]["usages"]
    assert sorted(users) == sorted(roles) == sorted(databases)  # one each, none without a workload


def test_pg_hba_admits_each_role_to_its_database_by_certificate_only():
    rules = [line.split() for line in the_cluster(prod())["spec"]["postgresql"]["pg_hba"]]
    *admitted, last = rules
    assert last == ["host", "all", "all", "all", "reject"]  # before CloudNativePG's password rule
    for rule in admitted:
        kind, database, user, address, method = rule
        assert (kind, address, method) == ("hostssl", "all", "cert") and database == user


def test_the_cnpg_validation_bites():
    objects = prod()
    cluster = the_cluster(objects)
    spec = cluster["spec"]
    with pytest.raises(jsonschema.ValidationError, match="'quorum' was unexpected"):
        synchronous = {**spec["postgresql"]["synchronous"], "quorum": 1}
        validate({**cluster, "spec": {**spec, "postgresql": {**spec["postgresql"], "synchronous": synchronous}}})
    with pytest.raises(jsonschema.ValidationError):
        validate({**cluster, "spec": {**spec, "instances": "3"}})
    with pytest.raises(jsonschema.ValidationError, match="'dataDurability' is a required|'sometimes' is not one of"):
        synchronous = {**spec["postgresql"]["synchronous"], "dataDurability": "sometimes"}
        validate({**cluster, "spec": {**spec, "postgresql": {**spec["postgresql"], "synchronous": synchronous}}})
    (store,) = of_kind(objects, "ObjectStore")
    configuration = store["spec"]["configuration"]
    with pytest.raises(jsonschema.ValidationError, match="'zstd' is not one of"):  # base backups: no zstd
        data = {**configuration["data"], "compression": "zstd"}
        validate({**store, "spec": {**store["spec"], "configuration": {**configuration, "data": data}}})


# --- the rendered URLs and certificates against a real PostgreSQL server ---------------------------

class StandInCA:
    """Issues what cert-manager would for a Certificate of the manifests: its commonName, dnsNames
    and usages, signed by one CA (the stand-in for paymesh-postgres-ca)."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paymesh-postgres-ca (test)")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def issue(self, certificate: dict, folder: Path) -> dict[str, Path]:
        spec = certificate["spec"]
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = {"server auth": ExtendedKeyUsageOID.SERVER_AUTH, "client auth": ExtendedKeyUsageOID.CLIENT_AUTH}
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec["commonName"])]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usages[u] for u in spec["usages"] if u in usages]),
                                  critical=False))
        if spec.get("dnsNames"):
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in spec["dnsNames"]]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        folder.mkdir(parents=True)
        files = {"ca.crt": folder / "ca.crt", "tls.crt": folder / "tls.crt", "tls.key": folder / "tls.key"}
        files["ca.crt"].write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        files["tls.crt"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files["tls.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                                       serialization.NoEncryption()))
        files["tls.key"].chmod(0o600)
        return files


@pytest.fixture(scope="module")
def database_server():
    """A real PostgreSQL server with TLS from the test's CA and pg_hba.conf as CloudNativePG writes it
    for the Cluster: its fixed rules (here: the harness's superuser, by password, in place of the
    operator's local peer rule), the Cluster's pg_hba lines, then its default password rule. Every
    managed role created (with a password, to show it is of no use) and every database."""
    objects = prod()
    cluster = the_cluster(objects)
    folder = Path(tempfile.mkdtemp(prefix="paymesh-pg-tls-"))  # not pytest's: `nobody` must enter it
    folder.chmod(0o711)  # (enter, not list: the clients' keys below are 0600, the test's own)
    ca = StandInCA()
    certificates = certificates_by_secret(objects)
    issued = {secret: ca.issue(certificate, folder / "certs" / secret) for secret, certificate in certificates.items()
              if certificate["spec"]["issuerRef"] == DATABASE_ISSUER}
    server_files = issued[cluster["spec"]["certificates"]["serverTLSSecret"]]
    hba = folder / "pg_hba.conf"
    hba.write_text("\n".join([f"host all {SUPERUSER} 127.0.0.1/32 scram-sha-256",
                              *cluster["spec"]["postgresql"]["pg_hba"], "host all all all scram-sha-256", ""]))
    server_side = folder / "server"
    server_side.mkdir()
    for name in ("ca.crt", "tls.crt", "tls.key"):
        shutil.copy(server_files[name], server_side / name)
    if os.geteuid() == 0:  # the server runs as nobody: its key is its own, mode 0600
        owner = pwd.getpwnam(UNPRIVILEGED_USER)
        for path in (server_side, *server_side.iterdir(), hba):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    settings = {"ssl": "on", "ssl_cert_file": str(server_side / "tls.crt"),
                "ssl_key_file": str(server_side / "tls.key"), "ssl_ca_file": str(server_side / "ca.crt"),
                "hba_file": str(hba), "ssl_min_protocol_version": "TLSv1.3"}  # CloudNativePG's default
    with LocalPostgres(folder / "pg", settings=settings) as server:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            for role in cluster["spec"]["managed"]["roles"]:
                admin.execute(f'CREATE ROLE "{role["name"]}" LOGIN PASSWORD \'not-a-way-in\'')
            initdb = cluster["spec"]["bootstrap"]["initdb"]  # (its Database object adopts it)
            databases = {initdb["database"]: initdb["owner"]}
            databases |= {d["spec"]["name"]: d["spec"]["owner"] for d in of_kind(objects, "Database")}
            for database, owner in databases.items():
                admin.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
        yield server, issued
    shutil.rmtree(folder, ignore_errors=True)


def connect_as(server, url: dict, files: dict[str, Path] | None, **overrides):
    """The workload's URL as rendered, its host resolved to the test server (hostaddr: the name
    stays what verify-full checks) and its /etc/paymesh/postgres files the issued ones."""
    params = {**url, "hostaddr": "127.0.0.1", "port": str(server.port), "connect_timeout": "5"}
    if files:
        params |= {"sslrootcert": str(files["ca.crt"]), "sslcert": str(files["tls.crt"]),
                   "sslkey": str(files["tls.key"])}
    params |= overrides
    return psycopg.connect(**{k: v for k, v in params.items() if v is not None})


def test_each_workload_logs_in_as_its_role_to_its_database_by_its_certificate_only(database_server):
    server, issued = database_server
    objects = prod()
    clients = store_clients(objects)
    secrets = {name: mounted_certificate(objects, name, url)["spec"]["secretName"] for name, url in clients.items()}
    for workload, url in clients.items():
        files = issued[secrets[workload]]
        with connect_as(server, url, files) as connection:
            row = connection.execute("SELECT current_user, current_database(), ssl FROM pg_stat_ssl"
                                     " WHERE pid = pg_backend_pid()").fetchone()
        assert row == (url["user"], url["dbname"], True), workload

    cash, mortgage = clients["core-cash"], clients["core-mortgage"]
    cash_files, mortgage_files = issued[secrets["core-cash"]], issued[secrets["core-mortgage"]]
    with pytest.raises(psycopg.OperationalError, match="certificate authentication failed"):
        connect_as(server, cash, mortgage_files)  # another role's certificate
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):
        connect_as(server, cash, cash_files, dbname=mortgage["dbname"])  # another store's database
    with pytest.raises(psycopg.OperationalError, match="requires a valid client certificate"):  # a password
        connect_as(server, cash, None, sslrootcert=str(cash_files["ca.crt"]), sslcert=None, sslkey=None,
                   password="not-a-way-in")
    with pytest.raises(psycopg.OperationalError, match="rejects connection"):  # plaintext
        connect_as(server, cash, None, sslmode="disable", sslrootcert=None, sslcert=None, sslkey=None,
                   password="not-a-way-in")
    with pytest.raises(psycopg.OperationalError, match="does not match host name|server certificate"):
        connect_as(server, cash, cash_files, host="paymesh-db-elsewhere.paymesh.svc.cluster.local")  # verify-full


def connect_as_user(conninfo: str, uid: int, gid: int) -> str:
    """Connects from a forked child running as uid/gid (this process's psycopg, already loaded: the
    venv need not be readable by that user); "connected" or the error libpq gave."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: drop to the user, connect, report, exit without pytest's teardown
        report = b"connected"
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            psycopg.connect(conninfo, connect_timeout=5).close()
        except BaseException as failed:  # noqa: BLE001 (reported to the parent)
            report = str(failed).encode()
        os.write(write_end, report[:4000])
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        outcome = answer.read().decode()
    os.waitpid(child, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the key file root's, the client another user")
def test_the_mounted_key_file_mode_is_one_libpq_accepts(database_server, tmp_path):
    # In the pod the Secret's files are root's, group fsGroup (10001), mode defaultMode, and the
    # process runs as 10001: libpq refuses a key it could read that others may read or write.
    # Here: root's files, group nobody's, the rendered mode, a client process run as nobody.
    server, issued = database_server
    objects = prod()
    url = store_clients(objects)["core-cash"]
    (workload,) = [w for w in workloads(objects) if w["metadata"]["name"] == "core-cash"]
    (volume,) = [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "postgres"]
    mode = volume["projected"]["defaultMode"]
    secret = mounted_certificate(objects, "core-cash", url)["spec"]["secretName"]
    nobody = pwd.getpwnam(UNPRIVILEGED_USER)
    mounted = Path(tempfile.mkdtemp(prefix="paymesh-pg-mount-"))
    try:
        os.chown(mounted, 0, nobody.pw_gid)
        mounted.chmod(0o750)

        def connect_with(file_mode: int):
            for name, source in issued[secret].items():
                target = mounted / name
                shutil.copy(source, target)
                os.chown(target, 0, nobody.pw_gid)
                target.chmod(file_mode)
            params = {**url, "hostaddr": "127.0.0.1", "port": str(server.port), "sslrootcert": str(mounted / "ca.crt"),
                      "sslcert": str(mounted / "tls.crt"), "sslkey": str(mounted / "tls.key")}
            conninfo = " ".join(f"{k}='{v}'" for k, v in params.items())
            return connect_as_user(conninfo, nobody.pw_uid, nobody.pw_gid)

        assert connect_with(mode) == "connected"
        refused = connect_with(0o444)  # and the check is there: a mode it refuses
        assert "private key file" in refused and "group or world access" in refused, refused
    finally:
        shutil.rmtree(mounted, ignore_errors=True)
