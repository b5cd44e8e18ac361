"""Where a job's objects live in the store: everything of one job under one prefix."""


def job_prefix(tenant_id: str, job_id: str) -> str:
    """``input/`` holds the uploads, ``masks/`` the masks as soon as known, ``artifacts/`` the final files."""
    return f"tenants/{tenant_id}/jobs/{job_id}"
