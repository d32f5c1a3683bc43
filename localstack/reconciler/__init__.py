"""The local stack's MCPServer reconciler: one sidecar process and one front-door route per remote server.

In a cluster a Temporal workflow (workflows/) turns each MCPServer into a Deployment, Service and
route; on one machine this process does the equivalent with what the machine has: it watches the
local Kubernetes API server, runs `python -m sidecar` in front of every remote server
(`spec.gateway.upstreamURL`, no `spec.image`), delivers its policy, adds `/<name>/mcp` to the front
door's route table, and writes the MCPServer's status conditions. Image servers need a container
runtime the local stack does not have: they are reported `Ready=False` (`NoContainerRuntime`).

Modules: `settings` (environment), `plan` (what an MCPServer asks for, pure), `conditions` (the
status shape shared with the cluster reconcile), `processes` (sidecar processes), `probe` (is the
upstream there), `loop` (list, watch, reconcile, status).
"""
