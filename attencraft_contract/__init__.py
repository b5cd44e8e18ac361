"""The AttenCraft API contract: the input rules and the request/response models, shared by the service, the
command line and the Python client.

Only pydantic and the standard library (``images`` also uses Pillow): no torch, no FastAPI, no database, so the
client can depend on httpx and pydantic alone. A limit or a rule lives here once, with the sentence that explains
a mistake; the API and the CLI show the same sentence for the same mistake.
"""
