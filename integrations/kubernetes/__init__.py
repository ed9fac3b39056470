"""Kubernetes: the cluster client, Deployment readiness, the watcher's parsing, the routers
(Gateway API, ingress-nginx, Contour) and cluster health. See `permissions.py` for every API
call Sluice makes (the RBAC in deploy/ is checked against it)."""
