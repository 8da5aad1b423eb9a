"""Shared fixtures: offline settings, one Ray instance per test session, a local S3 endpoint."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")



@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole session (2 CPUs, no dashboard)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        # "local": a new instance of our own even when another local Ray runs on the machine (ray.init() would join it)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


# -- an S3 endpoint on loopback (moto's server speaks the S3 protocol; s3fs talks to it for real) ------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


S3_PORT = _free_port()
# Set before Ray starts so that Ray workers inherit them: fsspec reads FSSPEC_<PROTOCOL>_<KWARG> at import.
os.environ.setdefault("FSSPEC_S3_ENDPOINT_URL", f"http://127.0.0.1:{S3_PORT}")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 endpoint for the session; yields a function making a fresh bucket URL."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    import itertools

    import fsspec

    counter = itertools.count()

    def make_bucket() -> str:
        name = f"bucket-{next(counter)}"
        fs = fsspec.filesystem("s3", endpoint_url=os.environ["FSSPEC_S3_ENDPOINT_URL"], skip_instance_cache=True)
        fs.mkdir(name)
        return f"s3://{name}"

    yield make_bucket
    server.stop()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks gain nothing from intra-op threads, and on a shared 2-core machine they lose a lot."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- a tiny CLIPSeg saved with save_pretrained (the real loading path, no download) ---------------------------------
CLIPSEG_VOCAB = ("person", "bicycle", "car", "dog", "sky")


@pytest.fixture(scope="session")
def tiny_clipseg(tmp_path_factory):
    """A randomly initialised CLIPSeg (projection 24, 64x64 input, patch 16) and a word-level tokenizer, saved
    together as a ``save_pretrained`` folder. Returns a namespace: folder, model, tokenizer, vocabulary, token_dim."""
    import types

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, PreTrainedTokenizerFast

    config = CLIPSegConfig(
        text_config={"vocab_size": 50, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 64, "patch_size": 16},
        projection_dim=24, reduce_dim=8, extract_layers=[0, 1], decoder_num_attention_heads=2,
        decoder_intermediate_size=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPSegForImageSegmentation(config).eval()
    words = ["[BOS]", "[EOS]", "[UNK]", "a", "photo", "of", ".", *CLIPSEG_VOCAB]  # other class names map to [UNK]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[EOS]")
    folder = tmp_path_factory.mktemp("clipseg") / "tiny-clipseg"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return types.SimpleNamespace(folder=str(folder), model=model, tokenizer=tokenizer, vocabulary=CLIPSEG_VOCAB,
                                 token_dim=24)
