"""Where a job's objects live in the store: everything of one job under one prefix."""


def job_prefix(tenant_id: str, job_id: str) -> str:
    """``input/`` holds the uploads, ``masks/`` the masks as soon as known, ``artifacts/`` the final files."""
    return f"tenants/{tenant_id}/jobs/{job_id}"


def checkpoints_prefix(tenant_id: str, job_id: str) -> str:
    """Training checkpoints: scratch, a new key per checkpoint (never overwritten), deleted when the job ends."""
    return f"{job_prefix(tenant_id, job_id)}/checkpoints/"


def generation_prefix(tenant_id: str, generation_id: str) -> str:
    """A generation's images: ``{i}.png``."""
    return f"tenants/{tenant_id}/generations/{generation_id}"


def prior_images_key(cache_key: str) -> str:
    """Prior preservation's class images (latents) of one base model, class prompt, count and seed: shared by every
    job and tenant, since they depend on nothing a user uploaded."""
    return f"shared/prior-images/{cache_key}"
