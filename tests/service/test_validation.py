"""Every kind of bad input is a problem+json 4xx that says what is wrong (never a 5xx)."""

import io
import os

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from attencraft_cli.main import main
from attencraft_contract.limits import MAX_CONCEPTS
from tests.service.job_requests import assert_problem, half_mask_bytes, image_bytes, post_job


def noise_png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_not_an_image(client: TestClient) -> None:
    problem = assert_problem(post_job(client, image=b"hello, I am text"), 415, "not an image", "PNG, JPEG or WebP")
    assert problem["code"] == "not_an_image"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_image_type(client: TestClient, fmt: str) -> None:
    assert_problem(post_job(client, image=image_bytes(fmt)), 415, f"{fmt} images are not supported")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_supported_image_types(client: TestClient, fmt: str) -> None:
    assert post_job(client, image=image_bytes(fmt, size=(80, 80))).status_code == 202


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(client: TestClient, fmt: str) -> None:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (96, 96), os.urandom(96 * 96 * 3)).save(buffer, format=fmt)
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]

    assert_problem(post_job(client, image=truncated), 422, "truncated or corrupt")


def test_empty_file(client: TestClient) -> None:
    assert_problem(post_job(client, image=b""), 422, "empty")


def test_oversized_file(client: TestClient) -> None:
    big = noise_png((300, 300))
    assert len(big) > 200_000

    problem = assert_problem(post_job(client, image=big), 413, "limit is 0.2 MB")
    assert problem["code"] == "file_too_large"


def test_oversized_request_body(client: TestClient) -> None:
    assert_problem(post_job(client, image=b"\0" * 3_000_000), 413, "larger than this service accepts (")


def test_too_many_pixels(client: TestClient) -> None:
    problem = assert_problem(post_job(client, image=image_bytes("PNG", size=(2000, 1000))), 422, "2000x1000", "limit")
    assert problem["code"] == "image_too_large"


def test_decompression_bomb(client: TestClient) -> None:
    bomb = image_bytes("PNG", size=(20000, 20000), mode="1")
    assert len(bomb) < 200_000

    assert_problem(post_job(client, image=bomb), 422, "pixels")


@pytest.mark.parametrize("names", [["cat"], [f"thing{index}" for index in range(MAX_CONCEPTS + 1)]])
def test_concept_count_out_of_range(client: TestClient, names: list[str]) -> None:
    assert_problem(post_job(client, concepts=names), 422, f"between 2 and {MAX_CONCEPTS} concepts", f"got {len(names)}")


def test_missing_concepts(client: TestClient) -> None:
    assert_problem(post_job(client, concepts=[]), 422, "concepts")


def test_duplicate_concept_names(client: TestClient) -> None:
    assert_problem(post_job(client, concepts=["Cat", "cat"]), 422, "must differ", "cat")


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_concept_name(client: TestClient, empty: str) -> None:
    assert_problem(post_job(client, concepts=["cat", empty]), 422, "concept")


@pytest.mark.parametrize("name", ["hot dog", "x" * 33, "chat😺", "a/b"])
def test_concept_name_not_a_plain_word(client: TestClient, name: str) -> None:
    assert_problem(post_job(client, concepts=["cat", name]), 422, "not a plain word")


def test_concept_name_written_as_a_placeholder(client: TestClient) -> None:
    problem = assert_problem(post_job(client, concepts=["cat", "<bear>"]), 422, "placeholder", "plain word 'bear'")
    assert problem["code"] == "invalid_concept_name"


def test_initializer_count_mismatch(client: TestClient) -> None:
    assert_problem(post_job(client, initializers=["kitten"]), 422, "one initializer per concept")


def test_initializer_not_a_plain_word(client: TestClient) -> None:
    assert_problem(post_job(client, initializers=["kitten", "big dog"]), 422, "not a plain word")


def test_mask_count_mismatch(client: TestClient) -> None:
    masks = [half_mask_bytes((64, 48), left=True)]
    assert_problem(post_job(client, masks=masks), 422, "one mask per concept (2)", "got 1")


def test_mask_size_mismatch(client: TestClient) -> None:
    masks = [half_mask_bytes((64, 48), left=True), half_mask_bytes((32, 32), left=False)]
    assert_problem(post_job(client, masks=masks), 422, "Mask 2 is 32x32", "64x48")


def test_colour_and_empty_masks_are_refused(client: TestClient) -> None:
    colour = [half_mask_bytes((64, 48), left=True), image_bytes("PNG", (64, 48))]
    assert assert_problem(post_job(client, masks=colour), 422, "Mask 2 is a colour (RGB) image")["code"] == (
        "mask_not_grayscale"
    )
    empty = [half_mask_bytes((64, 48), left=True), mask_png("L", value=0)]
    assert assert_problem(post_job(client, masks=empty), 422, "Mask 2 is all black")["code"] == "empty_mask"


def test_mask_not_an_image(client: TestClient) -> None:
    masks = [half_mask_bytes((64, 48), left=True), b"not a mask"]
    assert_problem(post_job(client, masks=masks), 415, "masks.1", "not an image")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"steps": 0}, "steps:"),
        ({"steps": 2001}, "steps:"),
        ({"seed": -1}, "seed:"),
        ({"seed": 2**31}, "seed:"),
        ({"steps": "many"}, "steps:"),
        ({"steps": "2"}, "steps:"),
        ({"steps": True}, "steps:"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ({"learning_rate": 1}, "learning_rate:"),
        ("{not json", "JSON object"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_out_of_range_or_unknown_options(client: TestClient, options: dict | str, fragment: str) -> None:
    problem = assert_problem(post_job(client, options=options), 422, fragment)
    assert problem["code"] == "invalid_options" and problem["errors"][0]["field"].startswith("options")


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/hook", "http://", "https://exa mple.com"])
def test_malformed_webhook_url(client: TestClient, url: str) -> None:
    assert_problem(post_job(client, webhook_url=url), 422, "webhook_url", "http(s) URL")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
    ],
)
def test_webhook_url_to_an_internal_address_is_refused(client: TestClient, url: str, reason: str) -> None:
    problem = assert_problem(post_job(client, webhook_url=url), 422, "webhook_url", reason)
    assert problem["code"] == "webhook_target_refused"


def test_webhook_url_accepted(client: TestClient) -> None:
    response = post_job(client, webhook_url="https://example.com/hooks/attencraft")
    assert response.json()["webhook_url"] == "https://example.com/hooks/attencraft"


def test_missing_image(client: TestClient) -> None:
    response = client.post("/jobs", data={"concepts": ["cat", "dog"]})
    problem = assert_problem(response, 422, "image")
    assert problem["errors"][0]["field"] == "image"


def test_image_sent_as_text(client: TestClient) -> None:
    response = client.post("/jobs", data={"concepts": ["cat", "dog"], "image": "photo.png"})
    assert_problem(response, 422, "image: expected an uploaded file")


@pytest.mark.parametrize("path", ["/jobs/{id}", "/jobs/{id}/artifacts", "/concepts/{id}"])
def test_unknown_ids(client: TestClient, path: str) -> None:
    assert_problem(client.get(path.format(id="00000000-0000-4000-8000-000000000000")), 404, "There is no")


def test_cancel_unknown_job(client: TestClient) -> None:
    assert_problem(client.post("/jobs/no-such-job/cancel"), 404, "There is no job 'no-such-job'")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "sleeping"}, "status"),
        ({"cursor": "garbage!"}, "cursor"),
    ],
)
def test_bad_list_parameters(client: TestClient, params: dict, fragment: str) -> None:
    assert_problem(client.get("/jobs", params=params), 422, fragment)


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/nope"), 404, "no such resource")
    assert_problem(client.delete("/jobs"), 405, "not allowed")


def test_oversized_chunked_body_without_length(client: TestClient) -> None:
    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        for _ in range(30):
            yield b"\0" * 100_000

    response = client.post("/jobs", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert_problem(response, 413, "larger than this service accepts (")


def test_unknown_list_parameter(client: TestClient) -> None:
    assert_problem(client.get("/jobs", params={"stauts": "queued"}), 422, "stauts")


def mask_png(mode: str, size: tuple[int, int] = (64, 48), value: int = 255) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value,) * 3).save(buffer, format="PNG")
    return buffer.getvalue()


SAME_MISTAKES = {
    "one concept": ({"concepts": ["cat"]}, ["--concept", "cat"]),
    "placeholder as a name": ({"concepts": ["<bear>", "dog"]}, ["--concept", "<bear>", "--concept", "dog"]),
    "two words": ({"concepts": ["teddy bear", "dog"]}, ["--concept", "teddy bear", "--concept", "dog"]),
    "duplicates": ({"concepts": ["Cat", "cat"]}, ["--concept", "Cat", "--concept", "cat"]),
    "zero steps": ({"options": {"steps": 0}}, ["--steps", "0"]),
    "colour mask": ({"masks": [mask_png("RGB"), mask_png("L")]}, ["--mask", "{RGB}", "--mask", "{L}"]),
    "mask size": ({"masks": [mask_png("L"), mask_png("L", (32, 32))]}, ["--mask", "{L}", "--mask", "{small}"]),
    "empty mask": ({"masks": [mask_png("L"), mask_png("L", value=0)]}, ["--mask", "{L}", "--mask", "{black}"]),
}


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mistake", SAME_MISTAKES)
def test_the_cli_says_what_the_api_says(
    client: TestClient, mistake: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    request, flags = SAME_MISTAKES[mistake]
    files = {
        "RGB": mask_png("RGB"),
        "L": mask_png("L"),
        "small": mask_png("L", (32, 32)),
        "black": mask_png("L", value=0),
    }
    for name, content in {**files, "photo": image_bytes()}.items():
        (tmp_path / f"{name}.png").write_bytes(content)
    places = {name: str(tmp_path / f"{name}.png") for name in files}
    concepts = [] if "--concept" in flags else ["--concept", "cat", "--concept", "dog"]
    arguments = [flag.format(**places) for flag in flags]

    problem = post_job(client, **request).json()
    status = main(["train", str(tmp_path / "photo.png"), *concepts, *arguments, "--out", str(tmp_path / "out")])

    assert status == 2
    assert capsys.readouterr().err == f"error: {problem['detail']}\n"
