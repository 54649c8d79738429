"""HTTP API routers, one module per domain, mounted by `deployments.ingress`."""
