"""The core's typed errors. Each has a stable ``code`` and a message a person understands."""

from attencraft_contract.rules import unknown_placeholders_sentence


class AttenCraftError(Exception):
    code = "attencraft_error"


class InvalidInputError(AttenCraftError, ValueError):
    code = "invalid_input"


class ModelLoadError(AttenCraftError):
    code = "model_load_failed"


class ConceptNotLocalizedError(AttenCraftError):
    code = "concept_not_localized"

    def __init__(self, concept: str, area_fraction: float) -> None:
        self.concept = concept
        self.area_fraction = area_fraction
        super().__init__(
            f"The model could not find the {concept!r} in the image (its mask covers {area_fraction:.2%} of the "
            "image). Try a clearer photo, a different concept name, or upload masks."
        )


class UnknownPlaceholderError(AttenCraftError):
    code = "unknown_placeholder"

    def __init__(self, unknown: list[str], known: list[str]) -> None:
        self.unknown = unknown
        self.known = known
        super().__init__(unknown_placeholders_sentence(unknown, known))


class PromptTooLongError(AttenCraftError):
    code = "prompt_too_long"

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        super().__init__(f"The prompt is {length} tokens long; the text encoder reads at most {limit}.")


class BaseModelMismatchError(AttenCraftError):
    code = "base_model_mismatch"


class TrainingCanceled(AttenCraftError):
    code = "canceled"

    def __init__(self) -> None:
        super().__init__("The job was canceled.")
