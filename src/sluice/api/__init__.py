"""The web app: REST API, the shared space (later issues) and the dashboard."""
