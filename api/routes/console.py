"""Serves the web console: one page and its static files from ``api/console/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

router = APIRouter(tags=["console"], include_in_schema=False)
FOLDER = Path(__file__).resolve().parent.parent / "console"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


@router.get("/console")
def console() -> FileResponse:
    """The console page."""
    return FileResponse(
        FOLDER / "index.html", media_type="text/html", headers={"Content-Security-Policy": CSP}
    )


@router.get("/console/static/{name}")
def static(name: str) -> FileResponse:
    """A file of the console: plain names only, from the console folder."""
    path = FOLDER / name
    if "/" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        raise HTTPException(404, "no such console file")
    return FileResponse(
        path, media_type=TYPES[path.suffix], headers={"Content-Security-Policy": CSP}
    )
