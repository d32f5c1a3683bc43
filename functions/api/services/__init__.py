"""The API's governance logic that more than one route module needs (grants, sessions, servers, teams, accounts).

Layers, checked by the import-linter contracts in pyproject.toml: route modules
(`functions.api.routes.*`) are leaves that call in here and into `functions.api.deps`; services
never import a route module; `deps` (FastAPI dependencies and backend access) sits under both.
"""
