"""The live-inventory prober shared by the server catalog and tool pins (one cache, one concurrency limit)."""

from __future__ import annotations

from functions.api.context import ApiContext
from functions.api.inventory import InventoryProber, client_tls
from mcp_sentinel.inventory_token import Signer, load_signing_key


def prober(ctx: ApiContext) -> InventoryProber:
    """The process's live-inventory prober (one cache and one concurrency limit for all requests)."""
    found = ctx.extras.get("inventory")
    if isinstance(found, InventoryProber):
        return found
    s = ctx.settings
    built = InventoryProber(
        s.inventory_url_template, timeout=s.inventory_timeout_seconds, concurrency=s.inventory_concurrency,
        cache_seconds=s.inventory_cache_seconds,
        signer=Signer(load_signing_key(s.inventory_signing_key_file)) if s.inventory_signing_key_file else None,
        tls=client_tls(s.inventory_tls_cert_file, s.inventory_tls_key_file, s.inventory_tls_ca_file),
    )  # fmt: skip
    ctx.extras["inventory"] = built
    return built
