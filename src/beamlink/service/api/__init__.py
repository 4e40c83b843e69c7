"""HTTP routers, one per domain. Thin: parse, authorise, call the domain module, return a wire model."""
