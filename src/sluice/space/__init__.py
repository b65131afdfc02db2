"""The built-in shared space: channels, posts, threads, material, feedback, calendar, search.

Its store and its access rule live here (imports `core` only); the outbox publishes into it
(`router/destinations.py`) and the web app serves it (`api/`).
"""
