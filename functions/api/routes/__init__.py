"""One module per resource; `functions.api.app.ROUTERS` lists the routers in mount order."""
