"""The local front door: one port that routes to the UI, ingest and each MCP server's sidecar.

It plays the part the ingress controller plays in a cluster (knative/ingress/ingress.yaml).
"""
