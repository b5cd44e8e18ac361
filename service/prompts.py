"""Prompt length, counted without the model by the job's saved tokenizer (placeholders: attencraft_contract)."""

import threading
from collections import OrderedDict

from tokenizers import Tokenizer

from attencraft_contract.rules import PLACEHOLDER
from service.errors import ValidationProblem
from service.models import Job
from service.storage import ObjectStore

TOKENIZER_ARTIFACT = "tokenizer"
CACHED_TOKENIZERS = 32


class PromptLengthChecker:
    """Counts tokens like the text encoder's tokenizer, which each job stores as its ``tokenizer`` artifact.

    The stored tokenizer's truncation length is the text encoder's limit. A placeholder is one token.
    """

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._tokenizers: OrderedDict[str, tuple[Tokenizer, int] | None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, job: Job, prompts: dict[str, str]) -> None:
        loaded = self._tokenizer(job)
        if loaded is None:  # a job saved without its tokenizer: the worker refuses the prompt instead
            return
        tokenizer, limit = loaded
        for field, prompt in prompts.items():
            length = len(tokenizer.encode(PLACEHOLDER.sub(" ", prompt)).ids) + len(PLACEHOLDER.findall(prompt))
            if length > limit:
                raise ValidationProblem(
                    f"The {field.replace('_', ' ')} is {length} tokens long; the text encoder reads at most {limit}.",
                    code="prompt_too_long",
                    errors=[{"field": field, "message": f"{length} tokens; at most {limit}"}],
                )

    def _tokenizer(self, job: Job) -> tuple[Tokenizer, int] | None:
        with self._lock:
            if job.id in self._tokenizers:
                self._tokenizers.move_to_end(job.id)
                return self._tokenizers[job.id]
        artifact = next((a for a in job.artifacts if a.name == TOKENIZER_ARTIFACT), None)
        loaded = None
        if artifact is not None:
            tokenizer = Tokenizer.from_str(self._store.read_bytes(artifact.key).decode())
            limit = tokenizer.truncation["max_length"]
            tokenizer.no_truncation()
            tokenizer.no_padding()
            loaded = (tokenizer, limit)
        with self._lock:
            self._tokenizers[job.id] = loaded
            while len(self._tokenizers) > CACHED_TOKENIZERS:
                self._tokenizers.popitem(last=False)
        return loaded
