"""`--allow-download`: one permission, given on the command line or in the environment, read by every loader.

Nothing here reaches the network: downloads are replaced by fakes, and the offline checks run with sockets
blocked.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrbench.cli import app
from cxrbench.downloads import ALLOW_DOWNLOAD_ENV, downloads_allowed

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


@pytest.fixture(autouse=True)
def no_permission(monkeypatch):
    """Start every test without permission; undo whatever the CLI sets in os.environ afterwards."""
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "0")


@pytest.fixture
def no_network(monkeypatch):
    """Fail (and record) any attempt to resolve a host name or open a connection."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    # the hub client fetches (once per process) a registry for its request headers: make it try again here
    from huggingface_hub.utils import _detect_agent

    monkeypatch.setattr(_detect_agent, "_registry", None, raising=False)
    return attempts


def test_help_explains_the_flag():
    runner = CliRunner()
    for args in ([], ["run"], ["sweep"], ["train"]):
        result = runner.invoke(app, [*args, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())
        assert "--allow-download" in text and ALLOW_DOWNLOAD_ENV in text, (args, result.output)


def test_the_permission_helper(monkeypatch):
    assert not downloads_allowed()
    for value in ("1", "true", "YES"):
        monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, value)
        assert downloads_allowed()
    assert not downloads_allowed(False)  # an explicit Python argument wins
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "0")
    assert downloads_allowed(True) and not downloads_allowed()


@pytest.fixture
def fake_imagenet_download(tmp_path, monkeypatch):
    """resnet50-imagenet with an empty torch hub cache and a download that writes a file instead."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    calls: list[tuple[str, str]] = []

    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    return calls


@pytest.fixture
def run_loads_the_model(monkeypatch):
    """`cxrbench run` reduced to loading the model through the registry (what it sees is recorded)."""
    import cxrbench.run
    from cxrbench.models.registry import get_model

    seen: list[object] = []

    def run(model, task, fracs, seeds, options):
        seen.append(get_model(model).load(options.checkpoint))
        return []

    monkeypatch.setattr(cxrbench.run, "run", run)
    return seen


@pytest.mark.parametrize("where", ["command", "global"])
def test_flag_lets_the_imagenet_loader_download(where, fake_imagenet_download, run_loads_the_model):
    args = ["run", "--model", "resnet50-imagenet", "--task", "siim-seg", "--no-progress"]
    args = [*args, "--allow-download"] if where == "command" else ["--allow-download", *args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    [(url, hash_prefix)] = fake_imagenet_download
    assert url.endswith("resnet50-0676ba61.pth") and hash_prefix == "0676ba61"
    [adapter] = run_loads_the_model
    assert adapter.weights_file.name == "resnet50-0676ba61.pth" and adapter.weights_file.is_file()


def test_without_the_flag_nothing_is_downloaded(fake_imagenet_download, run_loads_the_model):
    result = CliRunner().invoke(app, ["run", "--model", "resnet50-imagenet", "--task", "siim-seg", "--no-progress"])
    # a user error: one line naming the option, exit code 2 (the WeightsUnavailable traceback only with --debug)
    assert result.exit_code == 2 and "--allow-download" in result.output and "Traceback" not in result.output
    assert fake_imagenet_download == [] and run_loads_the_model == []


def test_train_and_sweep_flags_reach_the_text_encoder_loader(monkeypatch):
    """The flag on `train` / `sweep` is what `load_text_encoder` is then called with."""
    import medslip.text

    import cxrbench.sweep
    import cxrbench.train
    from cxrbench.train import load_text_encoder_for

    asked: list[bool] = []

    def load_text_encoder(name, max_length=128, allow_download=False):
        asked.append(allow_download)

    def train_method(*args, **kwargs):
        load_text_encoder_for({"text_encoder": "org/model"})
        return Path("final")

    def run_sweep(*args, **kwargs):
        load_text_encoder_for({"text_encoder": "org/model"})
        return []

    monkeypatch.setattr(medslip.text, "load_text_encoder", load_text_encoder)
    monkeypatch.setattr(cxrbench.train, "train_method", train_method)
    monkeypatch.setattr(cxrbench.sweep, "run_sweep", run_sweep)
    runner = CliRunner()
    for args in (["train", "medslip"], ["sweep"]):
        for flag in ([], ["--allow-download"]):
            monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "0")
            result = runner.invoke(app, [*args, *flag, "--no-progress"])
            assert result.exit_code == 0, result.output + repr(result.exception)
    assert asked == [False, True, False, True]


def test_hub_loaders_make_no_request_without_permission(no_network, tmp_path):
    from baselines.clip.model import TextTowerUnavailable, resolve_text_tower
    from cxrbench.models.open_clip import OpenClipAdapter, OpenClipWeightsUnavailable
    from medslip.text import TextEncoderUnavailable, load_text_encoder

    missing = "cxrbench-tests/no-such-model"
    with pytest.raises(TextEncoderUnavailable, match="--allow-download"):
        load_text_encoder(missing)
    with pytest.raises(TextTowerUnavailable, match="--allow-download"):
        resolve_text_tower(missing)
    with pytest.raises(OpenClipWeightsUnavailable, match="--allow-download"):
        OpenClipAdapter.load("RN50:yfcc15m", cache_dir=str(tmp_path))
    assert no_network == []


def test_local_text_encoders_load_offline(no_network, tmp_path):
    from medslip.text import load_text_encoder, minilm_path, tiny_text_encoder

    folder = tmp_path / "tiny"
    tiny = tiny_text_encoder(width=32, layers=1, heads=2)
    tiny.model.save_pretrained(str(folder))
    tiny.tokenizer.save_pretrained(str(folder))
    assert load_text_encoder(str(folder)).width == 32
    if minilm_path() is not None:
        assert load_text_encoder("minilm").width == 384
    assert no_network == []
