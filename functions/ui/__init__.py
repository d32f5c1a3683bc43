"""The dashboard UI function: sign-in, session-backed `/api` proxy and the static pages."""
