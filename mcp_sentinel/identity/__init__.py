"""Platform identity: users, teams, namespaces, API keys and the platform audit log (Postgres).

Public entry points: `IdentityStore` (store.py), `Principal` (principal.py), `TokenIssuer`
(tokens.py), `PasswordHasher` (passwords.py), `LoginLockout` (lockout.py).
"""
