"""The tests' one config builder: the Config object and the TOML file it writes say the same thing."""

from audit.config import load_config
from audit.simulator import DEMO_REMEDIATION_APP_ID, demo_access_policies, demo_tenants
from tests.simconfig import sim_toml


def test_the_written_file_loads_as_the_built_config(sim_factory, make_config, tmp_path):
    tenants = demo_tenants(users=20, seed=1)
    sim = sim_factory(tenants)
    config = make_config(sim, tenants, tmp_path, policy=demo_access_policies(tenants), fail_on="critical", keep=3)
    assert config.remediation_app.app_id == DEMO_REMEDIATION_APP_ID
    assert config.remediation_app.home_tenant_id == tenants[0]["tenant_id"]  # the tenant holding the app
    assert load_config(config.path) == config


def test_sim_toml_matches_the_simulators_own_config(sim_factory, tmp_path):
    # The simulator prints a configuration for people trying the tool; tests build theirs the same way.
    sim = sim_factory(demo_tenants(users=20, seed=1))
    assert sim_toml(sim, tmp_path / "reports") == sim.config_toml(str(tmp_path / "reports"))
