"""Production's cores never generate loans: the rendered prod configuration turns the synthetic
portfolio off (a core on an empty claim stays NOT_SERVING until the loan master file is
imported); dev keeps the default (on), as `make run` does."""

from tests.k8s.manifests import of_kind, render


def config_of(overlay: str) -> dict[str, str]:
    [config] = [c for c in of_kind(render(overlay), "ConfigMap") if c["metadata"]["name"].startswith("paymesh-config")]
    return config["data"]


def test_prod_turns_the_synthetic_portfolio_off_and_dev_keeps_it():
    assert config_of("prod")["PAYMESH_SYNTHETIC_PORTFOLIO"] == "off"
    assert config_of("dev").get("PAYMESH_SYNTHETIC_PORTFOLIO", "on") == "on"
