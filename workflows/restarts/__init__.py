"""Component restarts: Kubernetes rollouts or local processes, each with a readiness deadline."""
