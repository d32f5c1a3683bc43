"""Team provisioning: team record, namespace and its guard rails, owner membership (a saga)."""
