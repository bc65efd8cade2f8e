"""Run the demo tenants in the foreground: python -m audit.simulator [users] [seed]."""

from __future__ import annotations

import sys
import time

from . import Simulator, demo_tenants


def main(argv: list[str]) -> int:
    users = int(argv[0]) if argv else 500
    seed = int(argv[1]) if len(argv) > 1 else 7
    with Simulator(demo_tenants(users, seed)) as sim:
        print(f"# simulator at {sim.url}; trust {sim.ca_path}")
        for name, secret in sim.secrets_env().items():
            print(f"export {name}='{secret}'")
        print(sim.config_toml())
        sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
