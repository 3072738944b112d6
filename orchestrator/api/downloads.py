"""File downloads the API and the console both serve."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from orchestrator.services.context import ServiceContext
from orchestrator.services.views.stored_files import csv_export, csv_filename


def csv_download(ctx: ServiceContext, job_id: str) -> StreamingResponse:
    """A job's stored files and checksums as a CSV attachment."""
    return StreamingResponse(
        csv_export(ctx, job_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{csv_filename(job_id)}"'},
    )
