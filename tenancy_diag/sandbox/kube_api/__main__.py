"""``python -m tenancy_diag.sandbox.kube_api``: the sandbox's Kubernetes API server."""

from tenancy_diag.sandbox.kube_api.running import main

if __name__ == "__main__":
    main()
