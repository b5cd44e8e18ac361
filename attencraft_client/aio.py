"""The asynchronous client: `AsyncClient(url, key)` and its `AsyncJob`s, the same calls as `Client`."""

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from attencraft_client import calls
from attencraft_client.client import (
    DEFAULT_TIMEOUT_S,
    EVENT_READ_TIMEOUT_S,
    EVENT_STREAM_RECONNECTS,
    GENERATION_WAIT_S,
    POLL_INTERVAL_S,
    Generation,
)
from attencraft_client.errors import ApiError, ClientError, ServerUnreachable, TaskFailed
from attencraft_client.events import NO_EVENT_STREAM, EventStreamParser, ProgressBar, apply_event
from attencraft_contract.models import ArtifactList, GenerationOut, GenerationStatus, JobOut, JobPage, JobStatus


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
        bar = ProgressBar() if progress else None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            if not self.status.is_terminal and not await self._follow_events(bar, deadline):
                await self._poll(bar, deadline)
            await self.refresh()
            if bar:
                bar.show(self.data)
        finally:
            if bar:
                bar.close()
        return self

    def _check_deadline(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise ClientError(f"Job {self.id} is still {self.status} after the wait's timeout.")

    async def _follow_events(self, bar: ProgressBar | None, deadline: float | None) -> bool:
        last_id: str | None = None
        for _ in range(EVENT_STREAM_RECONNECTS):
            headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": last_id} if last_id else {})
            timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=EVENT_READ_TIMEOUT_S)
            parser = EventStreamParser()
            try:
                async with self.client.http.stream(
                    "GET", f"/jobs/{self.id}/events", headers=headers, timeout=timeout
                ) as response:
                    if response.status_code in NO_EVENT_STREAM:
                        return False
                    if not response.is_success:
                        await response.aread()
                        raise ApiError.from_response(response)
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        last_id = event.id or last_id
                        self.data, ended = apply_event(self.data, event)
                        if bar:
                            bar.show(self.data)
                        if ended:
                            return True
                        self._check_deadline(deadline)
            except httpx.TransportError:
                pass
            if (await self.refresh()).status.is_terminal:
                return True
        return False

    async def _poll(self, bar: ProgressBar | None, deadline: float | None) -> None:
        while not (await self.refresh()).status.is_terminal:
            if bar:
                bar.show(self.data)
            self._check_deadline(deadline)
            await asyncio.sleep(POLL_INTERVAL_S)


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
        **options: Any,
    ) -> AsyncJob:
        request = calls.create_job_request(
            self.http, image, concepts, initializers=initializers, masks=masks, webhook_url=webhook_url, options=options
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
        response = await self._send(self.http.build_request("GET", url))
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
        **options: Any,
    ) -> Generation:
        data_of_job = job.data if isinstance(job, AsyncJob) else (await self.get_job(job)).data
        ids = list(concept_ids or [concept.id for concept in data_of_job.concepts])
        fields = {"negative_prompt": negative_prompt, "seed": seed, **options}
        request = calls.generate_request(self.http, ids, prompt, wait_s=GENERATION_WAIT_S, fields=fields)
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
