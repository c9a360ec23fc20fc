"""Per-route rate limits for web frameworks, declared as slowapi and Flask-Limiter declare them.

    hammer.integrations.starlette   Starlette and FastAPI (asyncio, through hammer.aio)
    hammer.integrations.flask       Flask (threads, through hammer.Hammer)

Each module is imported only when used, and only it needs its framework: `import hammer` never imports Starlette or
Flask. Both offer the same Limiter: a key function and default limits, `@limiter.limit("5/minute")` per route (several
limits in one string, "10/second;1000/day", decided at once: all pass and all are charged, or none), `@limiter.exempt`,
`@limiter.shared_limit(..., scope="name")` for a group of routes, application-wide limits, the IETF draft's RateLimit
headers (and optionally slowapi's and Flask-Limiter's X-RateLimit-*) on every limited response, and an `on_breach`
callback or exception handler to shape the 429. What they share lives in _core.py.
"""
