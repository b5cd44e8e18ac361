"""The synchronous client: `Client(url, key)`, its `Job`s and `Generation`s."""

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from attencraft_client import calls
from attencraft_client.errors import ApiError, ServerUnreachable, TaskFailed
from attencraft_client.events import EVENT_STREAM_RECONNECTS, EVENT_STREAM_TIMEOUT, NO_EVENT_STREAM, JobFollower
from attencraft_contract.models import (
    ArtifactList,
    ArtifactOut,
    ExportFormat,
    GenerationOut,
    GenerationStatus,
    JobOut,
    JobPage,
    JobReport,
    JobStatus,
)

POLL_INTERVAL_S = 1.0
GENERATION_WAIT_S = 30  # per request; the client asks again until the images are there


class Job:
    """A training job: its latest state in ``data`` (a JobOut), refreshed by `refresh` and `wait`."""

    def __init__(self, client: "Client", data: JobOut) -> None:
        self.client = client
        self.data = data

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def status(self) -> JobStatus:
        return self.data.status

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status} {self.data.progress.step}/{self.data.progress.total}>"

    def refresh(self) -> "Job":
        self.data = self.client.get_job(self.id).data
        return self

    def cancel(self) -> "Job":
        self.data = self.client.cancel(self.id).data
        return self

    def wait(self, *, progress: bool = False, timeout_s: float | None = None) -> "Job":
        """Until the job ends (succeeded, failed or canceled): from the server's event stream when it has one,
        else by polling. ``progress`` draws a bar on stderr. Returns the job in its final state."""
        follower = JobFollower(self.data, progress=progress, timeout_s=timeout_s)
        try:
            if not self.status.is_terminal and not self._follow_events(follower):
                while not self.refresh().status.is_terminal:
                    follower.show(self.data)
                    time.sleep(POLL_INTERVAL_S)
            follower.show(self.refresh().data)
        finally:
            follower.close()
        return self

    def _follow_events(self, follower: JobFollower) -> bool:
        """True once the stream reported the end; False when the server offers no event stream."""
        for _ in range(EVENT_STREAM_RECONNECTS):
            headers = follower.stream_headers()
            try:
                with self.client.http.stream(
                    "GET", follower.events_path, headers=headers, timeout=EVENT_STREAM_TIMEOUT
                ) as r:
                    if r.status_code in NO_EVENT_STREAM:
                        return False
                    if not r.is_success:
                        r.read()
                        raise ApiError.from_response(r)
                    if any(follower.take_line(line) for line in r.iter_lines()):
                        return True
            except httpx.TransportError:
                pass  # a dropped stream: reconnect, resuming after the last event seen
            if self.refresh().status.is_terminal:
                return True
            follower.show(self.data)
        return False


class Generation:
    """Images drawn with a job's concepts: ``data`` (a GenerationOut) and, once succeeded, ``images`` (PNG bytes)."""

    def __init__(self, data: GenerationOut, images: list[bytes]) -> None:
        self.data = data
        self.images = images

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def status(self) -> GenerationStatus:
        return self.data.status

    def save(self, out: Path) -> list[Path]:
        """``out`` for one image, ``out-<i>.png`` for several."""
        paths = (
            [out] if len(self.images) == 1 else [out.with_name(f"{out.stem}-{i}.png") for i in range(len(self.images))]
        )
        for path, content in zip(paths, self.images, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        return paths


class Client:
    """The AttenCraft API. Problems are raised as ApiError (``.status``, ``.code``, ``.detail``)."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout_s: float = calls.DEFAULT_TIMEOUT_S,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout_s)
        self.http.headers.update(calls.auth_headers(key))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.http.send(request)
        except httpx.TransportError as error:
            raise ServerUnreachable(self.url, error) from error

    def create_job(
        self,
        image: calls.ImageInput,
        concepts: Sequence[str],
        *,
        initializers: Sequence[str] | None = None,
        masks: Sequence[calls.ImageInput] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        """Submit a photo and its concept names; ``options`` are JobOptions: steps, seed, fit, method,
        preset, prior_preservation, prior_images, and AttenCraft's ablations ratios, multi_concept_loss, omega.

        ``idempotency_key`` (a UUID per intended job, say): a retry with the same key and request, after a timeout
        or a lost connection, returns the job the first call created instead of a second one (for 24 hours)."""
        request = calls.create_job_request(
            self.http,
            image,
            concepts,
            initializers=initializers,
            masks=masks,
            webhook_url=webhook_url,
            options=options,
            idempotency_key=idempotency_key,
        )
        return Job(self, calls.parsed(self._send(request), JobOut))

    def get_job(self, job: calls.JobRef) -> Job:
        return Job(
            self, calls.parsed(self._send(self.http.build_request("GET", f"/jobs/{calls.job_id_of(job)}")), JobOut)
        )

    def list_jobs(
        self, status: JobStatus | str | None = None, *, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        return calls.parsed(self._send(calls.list_jobs_request(self.http, status, limit, cursor)), JobPage)

    def iter_jobs(self, status: JobStatus | str | None = None) -> Iterator[Job]:
        cursor = None
        while True:
            page = self.list_jobs(status, limit=100, cursor=cursor)
            yield from (Job(self, item) for item in page.items)
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job: calls.JobRef) -> Job:
        request = self.http.build_request("POST", f"/jobs/{calls.job_id_of(job)}/cancel")
        return Job(self, calls.parsed(self._send(request), JobOut))

    def report(self, job: calls.JobRef) -> JobReport:
        """The job's measures that need no generation: mask areas and overlaps, ratios, loss curves."""
        request = self.http.build_request("GET", f"/jobs/{calls.job_id_of(job)}/report")
        return calls.parsed(self._send(request), JobReport)

    def artifacts(self, job: calls.JobRef, *, export: ExportFormat | str | None = None) -> ArtifactList:
        """The job's artifacts, or with ``export="diffusers"`` the concept set in diffusers' layout."""
        path = f"/jobs/{calls.job_id_of(job)}/" + ("export" if export else "artifacts")
        params = {"format": str(export)} if export else None
        return calls.parsed(self._send(self.http.build_request("GET", path, params=params)), ArtifactList)

    def download(
        self, job: calls.JobRef, folder: str | Path, *, export: ExportFormat | str | None = None
    ) -> list[Path]:
        """Every artifact (or the export's files) into ``folder``, each checked against its SHA-256."""
        return [self.download_artifact(artifact, folder) for artifact in self.artifacts(job, export=export).items]

    def download_artifact(self, artifact: ArtifactOut, folder: str | Path) -> Path:
        """One artifact (an item of `artifacts`) into ``folder``, checked against its SHA-256."""
        response = self._send(calls.download_request(self.http, artifact.url))
        if not response.is_success:
            raise ApiError.from_response(response)
        return calls.checked_download(artifact, response.content, Path(folder))

    def generate(
        self,
        job: calls.JobRef,
        prompt: str,
        *,
        concept_ids: Sequence[str] | None = None,
        negative_prompt: str = "",
        seed: int | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Generation:
        """Draw ``prompt`` with the job's concepts (or the given ones) and wait for the images; a retry with the
        same ``idempotency_key`` gets the first call's generation, as create_job.

        ``options`` are GenerationOptions: num_images, steps, guidance_scale, width, height, scheduler.
        """
        ids = list(concept_ids or [concept.id for concept in self._job_data(job).concepts])
        fields = {"negative_prompt": negative_prompt, "seed": seed, **options}
        request = calls.generate_request(
            self.http, ids, prompt, wait_s=GENERATION_WAIT_S, fields=fields, idempotency_key=idempotency_key
        )
        data = calls.parsed(self._send(request), GenerationOut)
        while not data.status.is_terminal:
            data = self.get_generation(data.id)
            if not data.status.is_terminal:
                time.sleep(POLL_INTERVAL_S)
        if data.status == GenerationStatus.FAILED:
            error = data.error
            raise TaskFailed(f"Generation {data.id}", error.code if error else "failed", error.message if error else "")
        images = []
        for image in data.images:
            response = self._send(calls.download_request(self.http, image.url))
            if not response.is_success:
                raise ApiError.from_response(response)
            images.append(response.content)
        return Generation(data, images)

    def get_generation(self, generation_id: str) -> GenerationOut:
        request = self.http.build_request("GET", f"/generations/{generation_id}")
        return calls.parsed(self._send(request), GenerationOut)

    def _job_data(self, job: calls.JobRef) -> JobOut:
        if isinstance(job, Job):
            return job.data
        return job if isinstance(job, JobOut) else self.get_job(job).data
