"""The asynchronous client: `AsyncClient(url, key)` and its `AsyncJob`s, the same calls as `Client`."""

import asyncio
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from attencraft_client import calls
from attencraft_client.calls import DEFAULT_TIMEOUT_S
from attencraft_client.client import GENERATION_WAIT_S, POLL_INTERVAL_S, Generation
from attencraft_client.errors import ApiError, ServerUnreachable, TaskFailed
from attencraft_client.events import EVENT_STREAM_RECONNECTS, EVENT_STREAM_TIMEOUT, NO_EVENT_STREAM, JobFollower
from attencraft_contract.models import (
    ArtifactList,
    GenerationOut,
    GenerationStatus,
    JobOut,
    JobPage,
    JobReport,
    JobStatus,
)


class AsyncJob:
    def __init__(self, client: "AsyncClient", data: JobOut) -> None:
        self.client = client
        self.data = data

    @property
    def id(self) -> str:
        return self.data.id

    @property
    def status(self) -> JobStatus:
        return self.data.status

    async def refresh(self) -> "AsyncJob":
        self.data = (await self.client.get_job(self.id)).data
        return self

    async def cancel(self) -> "AsyncJob":
        self.data = (await self.client.cancel(self.id)).data
        return self

    async def wait(self, *, progress: bool = False, timeout_s: float | None = None) -> "AsyncJob":
        """As Job.wait: the event stream where the server offers one, polling otherwise."""
        follower = JobFollower(self.data, progress=progress, timeout_s=timeout_s)
        try:
            if not self.status.is_terminal and not await self._follow_events(follower):
                while not (await self.refresh()).status.is_terminal:
                    follower.show(self.data)
                    await asyncio.sleep(POLL_INTERVAL_S)
            follower.show((await self.refresh()).data)
        finally:
            follower.close()
        return self

    async def _follow_events(self, follower: JobFollower) -> bool:
        for _ in range(EVENT_STREAM_RECONNECTS):
            headers = follower.stream_headers()
            try:
                async with self.client.http.stream(
                    "GET", follower.events_path, headers=headers, timeout=EVENT_STREAM_TIMEOUT
                ) as response:
                    if response.status_code in NO_EVENT_STREAM:
                        return False
                    if not response.is_success:
                        await response.aread()
                        raise ApiError.from_response(response)
                    async for line in response.aiter_lines():
                        if follower.take_line(line):
                            return True
            except httpx.TransportError:
                pass
            if (await self.refresh()).status.is_terminal:
                return True
            follower.show(self.data)
        return False


class AsyncClient:
    """The AttenCraft API for asyncio code; the same methods as Client, awaited."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.http = http or httpx.AsyncClient(base_url=self.url, timeout=timeout_s)
        self.http.headers.update(calls.auth_headers(key))

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.http.send(request)
        except httpx.TransportError as error:
            raise ServerUnreachable(self.url, error) from error

    async def create_job(
        self,
        image: calls.ImageInput,
        concepts: Sequence[str],
        *,
        initializers: Sequence[str] | None = None,
        masks: Sequence[calls.ImageInput] | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> AsyncJob:
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
        return AsyncJob(self, calls.parsed(await self._send(request), JobOut))

    async def get_job(self, job: calls.JobRef) -> AsyncJob:
        request = self.http.build_request("GET", f"/jobs/{calls.job_id_of(job)}")
        return AsyncJob(self, calls.parsed(await self._send(request), JobOut))

    async def list_jobs(
        self, status: JobStatus | str | None = None, *, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        return calls.parsed(await self._send(calls.list_jobs_request(self.http, status, limit, cursor)), JobPage)

    async def cancel(self, job: calls.JobRef) -> AsyncJob:
        request = self.http.build_request("POST", f"/jobs/{calls.job_id_of(job)}/cancel")
        return AsyncJob(self, calls.parsed(await self._send(request), JobOut))

    async def report(self, job: calls.JobRef) -> JobReport:
        request = self.http.build_request("GET", f"/jobs/{calls.job_id_of(job)}/report")
        return calls.parsed(await self._send(request), JobReport)

    async def artifacts(self, job: calls.JobRef, *, export: str | None = None) -> ArtifactList:
        path = f"/jobs/{calls.job_id_of(job)}/" + ("export" if export else "artifacts")
        params = {"format": export} if export else None
        return calls.parsed(await self._send(self.http.build_request("GET", path, params=params)), ArtifactList)

    async def download(self, job: calls.JobRef, folder: str | Path, *, export: str | None = None) -> list[Path]:
        paths = []
        for artifact in (await self.artifacts(job, export=export)).items:
            paths.append(calls.checked_download(artifact, await self._fetch(artifact.url), Path(folder)))
        return paths

    async def _fetch(self, url: str) -> bytes:
        response = await self._send(calls.download_request(self.http, url))
        if not response.is_success:
            raise ApiError.from_response(response)
        return response.content

    async def generate(
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
        data_of_job = job.data if isinstance(job, AsyncJob) else (await self.get_job(job)).data
        ids = list(concept_ids or [concept.id for concept in data_of_job.concepts])
        fields = {"negative_prompt": negative_prompt, "seed": seed, **options}
        request = calls.generate_request(
            self.http, ids, prompt, wait_s=GENERATION_WAIT_S, fields=fields, idempotency_key=idempotency_key
        )
        data = calls.parsed(await self._send(request), GenerationOut)
        while not data.status.is_terminal:
            await asyncio.sleep(POLL_INTERVAL_S)
            data = await self.get_generation(data.id)
        if data.status == GenerationStatus.FAILED:
            error = data.error
            raise TaskFailed(f"Generation {data.id}", error.code if error else "failed", error.message if error else "")
        return Generation(data, [await self._fetch(image.url) for image in data.images])

    async def get_generation(self, generation_id: str) -> GenerationOut:
        request = self.http.build_request("GET", f"/generations/{generation_id}")
        return calls.parsed(await self._send(request), GenerationOut)
