"""Every command, given wrong input or an unavailable resource, ends with one line on stderr and exit status 2:
no traceback; argument and file mistakes are found before torch is imported (so before any model loads), which is
what keeps them quick: a `torch` that refuses to import stands in for the real one in those runs.
(`python -m benchmarks.cli_errors` times them.)"""

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.run import attencraft

CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there
TORCH_IMPORTED = "torch was imported while checking the arguments"


@dataclass(frozen=True)
class Case:
    arguments: list[str]
    says: str
    env: dict[str, str] = field(default_factory=dict)
    argument_error: bool = True  # False: a resource was tried (database, server, device), torch may be imported


TRAIN = ["train", "{photo}", "--out", "{new}"]
TWO = ["--concept", "cat", "--concept", "dog"]
GENERATE = ["generate", "--concepts", "{learned}", "--out", "{new}/x.png"]
REMOTE = ["--server", CLOSED_PORT_URL, "--key", "ak_anything"]

CASES = {
    "no command": Case([], "the following arguments are required: COMMAND"),
    "unknown command": Case(["fly"], "invalid choice: 'fly'"),
    "train: missing photo": Case(["train", "{missing}", *TWO, "--out", "{new}"], "There is no file at"),
    "train: not an image": Case(["train", "{notes}", *TWO, "--out", "{new}"], "the file is not an image"),
    "train: one concept": Case([*TRAIN, "--concept", "cat"], "Give between 2 and 8 concepts"),
    "train: placeholder as a name": Case([*TRAIN, "--concept", "<bear>", "--concept", "dog"], "plain word 'bear'"),
    "train: two words": Case([*TRAIN, "--concept", "teddy bear", "--concept", "dog"], "e.g. 'teddy_bear'"),
    "train: duplicate names": Case([*TRAIN, "--concept", "Cat", "--concept", "cat"], "must differ; repeated: cat"),
    "train: zero steps": Case([*TRAIN, *TWO, "--steps", "0"], "steps: Input should be greater than or equal to 1"),
    "train: steps not a number": Case([*TRAIN, *TWO, "--steps", "many"], "argument --steps: invalid int value"),
    "train: compress above 1": Case([*TRAIN, *TWO, "--compress", "1.5"], "1.5 is not a fraction in (0, 1]"),
    "train: mask of another size": Case(
        [*TRAIN, *TWO, "--mask", "{small}", "--mask", "{small}"], "must match the photo"
    ),
    "train: colour mask": Case([*TRAIN, *TWO, "--mask", "{rgb}", "--mask", "{gray}"], "a mask is grayscale"),
    "train: one mask for two": Case([*TRAIN, *TWO, "--mask", "{gray}"], "one mask per concept (2)"),
    "train: output holds a set": Case(["train", "{photo}", *TWO, "--out", "{learned}"], "already holds files"),
    "train: unknown device": Case([*TRAIN, *TWO, "--device", "gpu"], "Device 'gpu' is not one of"),
    "train: unknown model": Case([*TRAIN, *TWO, "--model", "nope"], "is neither a built-in model"),
    "train: bad initializer": Case([*TRAIN, *TWO, "--initializer", "cow"], "NAME=WORD"),
    "train: unknown fit": Case([*TRAIN, *TWO, "--fit", "stretch"], "invalid choice: 'stretch'"),
    "train: unknown method": Case(
        [*TRAIN, *TWO, "--method", "dreambooth"], "'attencraft', 'custom_diffusion', 'disendiff'"
    ),
    "train: unknown ratios": Case([*TRAIN, *TWO, "--ratios", "uniform"], "'adaptive', 'equal' or 'no_softmax'"),
    "train: ablation with a baseline": Case(
        [*TRAIN, *TWO, "--method", "disendiff", "--omega", "0.5"], "only valid with method attencraft"
    ),
    "train: masks for a method without": Case(
        [*TRAIN, *TWO, "--method", "custom_diffusion", "--mask", "{gray}", "--mask", "{gray}"], "uses no masks"
    ),
    "generate: no concept set": Case([*GENERATE[:2], "{empty}", "--prompt", "<cat>", "--out", "x"], "no concept set"),
    "generate: unknown placeholder": Case([*GENERATE, "--prompt", "<cow>"], "names <cow>, which these concepts"),
    "generate: height 1023": Case([*GENERATE, "--prompt", "<cat>", "--height", "1023"], "multiple of 8"),
    "generate: unknown scheduler": Case([*GENERATE, "--prompt", "x", "--scheduler", "euler"], "invalid choice"),
    "generate: folder and job": Case([*GENERATE, "--job", "j", "--prompt", "x"], "not allowed with argument"),
    "generate: remote without key": Case(["generate", "--job", "j", "--prompt", "x", "--out", "o.png"], "API key"),
    "generate: server down": Case(
        ["generate", "--job", "j", "--prompt", "x", "--out", "o.png", *REMOTE],
        "cannot be reached",
        argument_error=False,
    ),
    "serve: port in use": Case(["serve", "--port", "{busy_port}"], "Port {busy_port} on 127.0.0.1 is already in use"),
    "serve: unknown device": Case(["serve", "--device", "gpu"], "Device 'gpu' is not one of"),
    "serve: unknown model": Case(["serve", "--model", "nope"], "is neither a built-in model"),
    "serve: unknown queue": Case(["serve"], "ATTENCRAFT_QUEUE: Input should be", env={"ATTENCRAFT_QUEUE": "rabbit"}),
    "serve: data dir under a file": Case(["serve", "--data-dir", "{photo}/data"], "cannot be used: Not a directory"),
    "serve: database down": Case(
        ["serve", "--port", "0", "--model", "tiny"],
        "(ATTENCRAFT_DATABASE_URL) cannot be used",
        env={"ATTENCRAFT_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/attencraft"},
        argument_error=False,
    ),
    "serve: store not writable": Case(
        ["serve", "--port", "0"],
        "(ATTENCRAFT_STORAGE_URL) cannot be used",
        env={"ATTENCRAFT_STORAGE_URL": "file://{photo}/store"},
        argument_error=False,
    ),
    "serve: store of an unknown kind": Case(
        ["serve", "--port", "0"],
        "ATTENCRAFT_STORAGE_URL must start with file:// or s3://",
        env={"ATTENCRAFT_STORAGE_URL": "ftp://example.com/store"},
        argument_error=False,
    ),
    "worker: unknown queue": Case(["worker"], "ATTENCRAFT_QUEUE", env={"ATTENCRAFT_QUEUE": "rabbit"}),
    "worker: concurrency not a number": Case(["worker", "--concurrency", "x"], "invalid int value"),
    "keys: no action": Case(["keys"], "the following arguments are required: ACTION"),
    "keys create: no tenant": Case(["keys", "create"], "required: --tenant"),
    "keys revoke: unknown key": Case(["keys", "revoke", "ak_nothing"], "no key has the id", argument_error=False),
    "migrate: postgres:// database down": Case(
        ["migrate"],
        "postgres://nobody@127.0.0.1:9/attencraft (ATTENCRAFT_DATABASE_URL) cannot be used: connection",
        env={"ATTENCRAFT_DATABASE_URL": "postgres://nobody@127.0.0.1:9/attencraft"},
        argument_error=False,
    ),
    "migrate: data dir under a file": Case(["migrate"], "Not a directory", env={"ATTENCRAFT_DATA_DIR": "{photo}/d"}),
    "demo: zero steps": Case(["demo", "--steps", "0"], "steps: Input should be greater than or equal to 1"),
    "demo: unknown model": Case(["demo", "--model", "nope"], "is neither a built-in model"),
    "jobs: no action": Case(["jobs"], "required: ACTION"),
    "jobs submit: no key": Case(["jobs", "submit", "{photo}", *TWO], "Give an API key with --key"),
    "jobs submit: two words": Case(["jobs", "submit", "{photo}", "--concept", "a b", "--concept", "c"], "plain word"),
    "jobs submit: missing photo": Case(["jobs", "submit", "{missing}", *TWO, *REMOTE], "There is no file at"),
    "jobs submit: server down": Case(
        ["jobs", "submit", "{photo}", *TWO, *REMOTE], "cannot be reached", argument_error=False
    ),
    "jobs get: server down": Case(["jobs", "get", "j", *REMOTE], "cannot be reached", argument_error=False),
    "jobs wait: not a URL": Case(["jobs", "wait", "j", "--server", "nope", "--key", "k"], "not an http(s) URL"),
    "jobs cancel: no job": Case(["jobs", "cancel"], "required: JOB"),
    "jobs list: unknown status": Case(["jobs", "list", "--status", "sleeping"], "invalid choice: 'sleeping'"),
}


def saved(image: Image.Image, path: Path) -> str:
    image.save(path)
    return str(path)


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    folder = tmp_path_factory.mktemp("wrong-inputs")
    learned = folder / "learned"
    learned.mkdir()
    (learned / "metadata.json").write_text(json.dumps({"placeholders": ["<cat>", "<dog>"]}))
    (folder / "empty").mkdir()
    (folder / "notes.png").write_text("not an image")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {
            "folder": str(folder),
            "photo": saved(Image.new("RGB", (96, 64), (200, 120, 40)), folder / "photo.png"),
            "gray": saved(Image.new("L", (96, 64), 255), folder / "gray.png"),
            "rgb": saved(Image.new("RGB", (96, 64), (255, 255, 255)), folder / "rgb.png"),
            "small": saved(Image.new("L", (32, 32), 255), folder / "small.png"),
            "notes": str(folder / "notes.png"),
            "missing": str(folder / "missing.jpg"),
            "learned": str(learned),
            "empty": str(folder / "empty"),
            "new": str(folder / "new"),
            "busy_port": str(busy.getsockname()[1]),
        }


@pytest.fixture(scope="module")
def without_torch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """PYTHONPATH with a `torch` package first that fails the run if anything imports it."""
    folder = tmp_path_factory.mktemp("without-torch")
    (folder / "torch").mkdir()
    (folder / "torch" / "__init__.py").write_text(f"raise ImportError({TORCH_IMPORTED!r})\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize("name", CASES)
def test_a_wrong_input_is_one_sentence_and_exit_status_2(
    name: str, places: dict[str, str], without_torch: dict[str, str]
) -> None:
    case = CASES[name]
    arguments = [argument.format(**places) for argument in case.arguments]
    env = {key: value.format(**places) for key, value in case.env.items()}
    if case.argument_error:
        env |= without_torch
    result = attencraft(*arguments, cwd=Path(places["folder"]), env=env)

    assert TORCH_IMPORTED not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert case.says.format(**places) in result.stderr


def test_debug_shows_the_traceback(places: dict[str, str]) -> None:
    result = attencraft("train", places["missing"], *TWO, "--out", places["new"], "--debug", cwd=Path(places["folder"]))
    assert result.returncode == 2
    assert "Traceback" in result.stderr and result.stderr.strip().endswith(
        "There is no file at " + places["missing"] + "."
    )
