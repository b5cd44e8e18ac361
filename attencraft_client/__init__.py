"""A Python client for the AttenCraft API (httpx and pydantic only; the models are the server's own).

    from attencraft_client import Client

    with Client("http://127.0.0.1:8000", key) as client:
        job = client.create_job("photo.jpg", ["cat", "dog"], steps=300)
        job.wait(progress=True)
        images = client.generate(job, "<cat> and <dog> in Paris", num_images=2).save(Path("paris.png"))
        client.download(job, "catdog/")                       # artifacts; export="diffusers" for diffusers' layout

Problems of the API are raised as ApiError with ``.status``, ``.code`` and ``.detail``; ``AsyncClient`` offers
the same calls for asyncio.
"""

from attencraft_client.aio import AsyncClient, AsyncJob
from attencraft_client.client import Client, Generation, Job
from attencraft_client.errors import ApiError, ClientError, ServerUnreachable, TaskFailed

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "Client",
    "ClientError",
    "Generation",
    "Job",
    "ServerUnreachable",
    "TaskFailed",
]
