"""Server lifecycle: MCPServer -> Deployment, Service, Ingress and policy, as durable workflows."""
