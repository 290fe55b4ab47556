"""All routers, mounted under /api/v1 by api.main."""

from fastapi import APIRouter

from api.routes import auth, health, reassignments

api_router = APIRouter()
api_router.include_router(auth.router)
api_router.include_router(reassignments.router)
api_router.include_router(health.router)
