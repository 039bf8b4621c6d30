"""``python -m tenancy_diag.sandbox.admin_api``: the sandbox's Tenancy admin API server."""

import sys

from tenancy_diag.sandbox.admin_api.running import main

if __name__ == "__main__":
    sys.exit(main())
