"""Model files: safe name resolution, clear missing-file errors, safetensors-first loading, caching."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from vid4d.models import loading
from vid4d.models.loading import CheckpointFormatError, ModelNotFoundError


@pytest.fixture(autouse=True)
def _clear():
    loading.clear_cache()
    yield
    loading.clear_cache()


def test_missing_model_names_file_folder_and_source(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        loading.resolve_model_path("tracking", "movi_f_raft_patch_4_alpha.pth", [tmp_path / "tracking"])
    msg = str(e.value)
    assert "movi_f_raft_patch_4_alpha.pth" in msg and "models/vid4d/tracking" in msg and "16lemoing/dot" in msg
    assert str(tmp_path / "tracking") in msg
    assert isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["../secret.safetensors", "/etc/passwd", "a/../../b.pt", "..\\x.pt", ""])
def test_names_escaping_the_models_folder_are_refused(tmp_path, name):
    with pytest.raises(ValueError):
        loading.resolve_model_path("depth", name, [tmp_path])


def test_subfolders_and_symlinks_inside_the_folder_resolve(tmp_path):
    real = tmp_path / "elsewhere" / "big.safetensors"
    real.parent.mkdir()
    save_file({"w": torch.ones(2)}, str(real))
    folder = tmp_path / "depth"
    (folder / "ChronoDepth-v1").mkdir(parents=True)
    (folder / "link.safetensors").symlink_to(real)
    assert loading.resolve_model_path("depth", "ChronoDepth-v1", [tmp_path / "none", folder]) == folder / "ChronoDepth-v1"
    path = loading.resolve_model_path("depth", "link.safetensors", [folder])
    assert torch.equal(loading.load_state_dict(path)["w"], torch.ones(2))
    assert "link.safetensors" in loading.list_model_files("depth", [folder])
    assert "ChronoDepth-v1" in loading.list_model_files("depth", [folder], folders=True)


def test_env_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("VID4D_MODELS_DIR", str(tmp_path))
    assert loading.default_model_dirs("gsdit")[0] == tmp_path / "gsdit"
    with pytest.raises(ValueError, match="unknown model kind"):
        loading.default_model_dirs("nope")


def test_safetensors_and_pickle_load_cached_by_dtype_and_device(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "a.count": torch.tensor([3])}
    save_file(sd, str(tmp_path / "m.safetensors"))
    torch.save({"state_dict": sd}, tmp_path / "m.pth")
    a = loading.load_state_dict(tmp_path / "m.safetensors")
    assert torch.equal(a["a.weight"], sd["a.weight"])
    assert loading.load_state_dict(tmp_path / "m.safetensors") is a
    half = loading.load_state_dict(tmp_path / "m.safetensors", dtype=torch.float16)
    assert half is not a and half["a.weight"].dtype == torch.float16 and half["a.count"].dtype == torch.int64
    b = loading.load_state_dict(tmp_path / "m.pth")
    assert torch.equal(b["a.weight"], sd["a.weight"])


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickles_with_code_are_refused(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(CheckpointFormatError, match="evil.pt"):
        loading.load_state_dict(tmp_path / "evil.pt")


def test_corrupt_unsupported_and_non_state_dict_files(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointFormatError, match="bad.safetensors"):
        loading.load_state_dict(tmp_path / "bad.safetensors")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointFormatError, match="unsupported"):
        loading.load_state_dict(tmp_path / "w.onnx")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointFormatError, match="state_dict"):
        loading.load_state_dict(tmp_path / "list.pt")
    with pytest.raises(ModelNotFoundError):
        loading.load_state_dict(tmp_path / "absent.safetensors")


def test_require_keys_names_missing_prefixes(tmp_path):
    with pytest.raises(CheckpointFormatError, match="fnet"):
        loading.require_keys({"cnet.w": torch.ones(1)}, ["fnet.", "cnet."], tmp_path / "x.pth")
