"""A job's report: the measures it has without drawing an image (its masks, sampling ratios and loss curves).

Masks are read back from the store as the PNGs the worker wrote (or the ones uploaded), so a running job reports
what it has so far; the losses come from its event log (service.event_log.loss_history).
"""

import io
import itertools
import math
from collections.abc import Callable, Sequence
from statistics import fmean

from PIL import Image, ImageChops

from attencraft_contract.models import ConceptReport, JobOptions, JobReport, LossPoint, LossRecord, MaskOverlap
from service.models import Job
from service.presenters import masks_source

CURVE_POINTS = 20  # stretches of the training a loss curve is cut into


def _mask(content: bytes) -> Image.Image:
    """A stored mask PNG as a 1-bit image: white (>= 128) is the concept."""
    with Image.open(io.BytesIO(content)) as picture:
        return picture.convert("L").point(lambda value: 255 if value >= 128 else 0).convert("1")


def _white(mask: Image.Image) -> int:
    return mask.histogram()[-1]


def _iou(first: Image.Image, second: Image.Image) -> float:
    if second.size != first.size:
        second = second.resize(first.size, Image.Resampling.NEAREST)
    union = _white(ImageChops.logical_or(first, second))
    return _white(ImageChops.logical_and(first, second)) / union if union else 0.0


def loss_curve(records: Sequence[LossRecord], total_steps: int) -> list[LossPoint]:
    """Mean losses of ``records`` per stretch of ceil(total / CURVE_POINTS) steps; stretches without one are left
    out, so the curves of a job and of each of its concepts share their stretches."""
    width = max(1, math.ceil(total_steps / CURVE_POINTS))
    points = []
    ordered = sorted(records, key=lambda record: record.step)
    for index, group in itertools.groupby(ordered, key=lambda record: (record.step - 1) // width):
        members = list(group)
        points.append(
            LossPoint(
                from_step=index * width + 1,
                to_step=min((index + 1) * width, total_steps),
                steps=len(members),
                loss=fmean(record.loss for record in members),
                reconstruction=fmean(record.reconstruction for record in members),
                attention=fmean(record.attention for record in members),
            )
        )
    return points


def job_report(job: Job, records: Sequence[LossRecord], read: Callable[[str], bytes]) -> JobReport:
    """The report of ``job`` from its loss records, reading its masks with ``read(key)``."""
    options = JobOptions.model_validate(job.options)
    keys = [concept.mask_key or concept.user_mask_key for concept in job.concepts]
    masks = [_mask(read(key)) if key else None for key in keys]
    total = job.progress_total
    concepts = []
    for concept, mask in zip(job.concepts, masks, strict=True):
        alone = [record for record in records if record.subset == [concept.name]]
        concepts.append(
            ConceptReport(
                name=concept.name,
                placeholder=concept.placeholder,
                ratio=concept.ratio,
                mask_area=_white(mask) / (mask.width * mask.height) if mask else None,
                single_steps=len(alone),
                loss_curve=loss_curve(alone, total),
            )
        )
    known = [(concept.name, mask) for concept, mask in zip(job.concepts, masks, strict=True) if mask]
    return JobReport(
        job_id=job.id,
        status=job.status,
        method=options.method,
        masks_source=masks_source(job, options),
        steps_trained=len(records),
        total_steps=total,
        concepts=concepts,
        mask_overlaps=[
            MaskOverlap(concepts=[first, second], iou=_iou(first_mask, second_mask))
            for (first, first_mask), (second, second_mask) in itertools.combinations(known, 2)
        ],
        loss_curve=loss_curve(records, total),
    )
