"""Prior preservation's class images kept in the object store, so a second job on the same base model and class
prompt reuses the first job's instead of generating them again."""

import contextlib
import io

from service.storage import ObjectExists, ObjectMissing, ObjectStore
from service.storage.layout import prior_images_key


class StorePriorCache:
    """attencraft_core.prior.PriorImageCache on the object store."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    def load(self, key: str) -> bytes | None:
        try:
            return self.objects.read_bytes(prior_images_key(key))
        except ObjectMissing:
            return None

    def store(self, key: str, data: bytes) -> None:
        with contextlib.suppress(ObjectExists):  # another worker stored the same images first: they are identical
            self.objects.put(prior_images_key(key), io.BytesIO(data), content_type="application/octet-stream")
