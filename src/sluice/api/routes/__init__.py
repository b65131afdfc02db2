"""Route modules of the web app, one per resource; each exposes `router` (an APIRouter)."""
