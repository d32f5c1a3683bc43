"""A small local Kubernetes API server speaking the real REST API, for the local stack and tests.

No real kube-apiserver can run where the local stack runs, so this serves the subset of the
Kubernetes API the product uses (core kinds, CRDs with schema validation, watch) over HTTP.
The product reaches it only through the official `kubernetes` client, exactly as it reaches a
real cluster; only the kubeconfig differs.
"""
