"""What `attencraft demo` learns and draws: on `toy`, a held-out toy scene whose truth the oracle can check; on any
other base model, the synthetic two-object photo (its masks and images mean nothing on random weights)."""

import io
from collections.abc import Sequence
from dataclasses import dataclass

from attencraft_core.model_spec import TOY

TOY_DEMO_SEED = 0  # the held-out scene the demo learns; any seed works, this one is fixed so runs compare
TOY_UPLOAD_SIDE = 256  # toy scenes are 32 px; the API wants at least 64, and a bigger picture is easier to look at
IMAGES_PER_PROMPT = 4
SAMPLING_STEPS = 25


@dataclass(frozen=True)
class DemoCase:
    photo: bytes  # PNG
    concepts: list[str]
    description: str
    truth: tuple | None  # the toy scene's objects (toyworld.scenes.ToyObject), in concept order


def _png(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def demo_case(model: str) -> DemoCase:
    if model != TOY:
        from attencraft_cli.sample_photo import two_object_photo

        return DemoCase(_png(two_object_photo(384)), ["ball", "box"], "a generated photo", None)
    from PIL import Image

    from toyworld.scenes import held_out_scene

    scene = held_out_scene(TOY_DEMO_SEED)
    photo = Image.fromarray(scene.image).resize((TOY_UPLOAD_SIDE, TOY_UPLOAD_SIDE), Image.Resampling.NEAREST)
    names = [obj.class_name for obj in scene.objects]
    shown = " and ".join(f"a {obj.shade} {obj.class_name}" for obj in scene.objects)
    return DemoCase(_png(photo), names, f"held-out toy scene {TOY_DEMO_SEED} ({shown})", scene.objects)


def demo_prompts(placeholders: Sequence[str]) -> list[str]:
    """Each concept alone, then all together, in the prompt form the concepts were trained with."""
    return [f"a photo of {p}" for p in placeholders] + ["a photo of " + " and ".join(placeholders)]


def oracle_readout(case: DemoCase, prompt: str, pictures: Sequence[bytes]) -> str:
    """What the toy world's oracle sees in the pictures drawn for one demo prompt, in one line."""
    import numpy as np
    from PIL import Image

    from toyworld.measures import identity

    truth = case.truth or ()
    arrays = [np.asarray(Image.open(io.BytesIO(picture)).convert("RGB")) for picture in pictures]
    counts = [
        f"{obj.shade} {obj.class_name} in {sum(identity(array, obj) for array in arrays):.0f}/{len(arrays)}"
        for obj in truth
    ]
    return f"  {prompt!r}: " + ", ".join(counts)
