"""The official `openai` client against a real `tanto serve`, unchanged.

The fixture starts `tanto serve` (``$TANTO_BIN``, else ``target/release/tanto``,
else ``target/debug/tanto``) on a free loopback port over a temporary
Hugging Face cache that links the SmolLM2-135M GGUF test model
(``${TANTO_TEST_MODELS:-~/.cache/tanto/test-models}``), and stops it with
SIGTERM, checking it exits 0.

``TANTO_BASE_URL`` (plus optional ``TANTO_TEST_MODEL_ID``) points the tests at
an already running server instead. Without a binary or the model the tests
skip, unless ``TANTO_REQUIRE_TEST_MODELS`` is set, which turns skips into
failures.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
EMBED_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


WHISPER = {"openai/whisper-tiny.en": "whisper-tiny.en", "openai/whisper-base": "whisper-base"}
WHISPER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
FOX_WAV = REPO / "tests" / "fixtures" / "whisper" / "fox16k.wav"
# transformers' greedy transcript of the clip (tests/fixtures/whisper/reference.json).
FOX_TEXT = "The quick brown fox jump over the lazy dog."

# The committed tiny random SmolVLM (scripts/ref/make-tiny-vlm.py) and its test images.
VLM_ID = "tanto-test/tiny-smolvlm"
VLM_COMMIT = "abcdef0123456789abcdef0123456789abcdef01"
VLM_DIR = REPO / "tests" / "fixtures" / "vlm-tiny" / "idefics3"
VLM_IMAGES = REPO / "tests" / "fixtures" / "vlm-tiny" / "images"


def _link_repo(hf_home: Path, repo_id: str, commit: str, src: Path) -> None:
    """`src`'s files as symlinks in a huggingface_hub-style cache entry."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    for f in src.rglob("*"):
        if f.is_file():
            dest = snap / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)


def _skip(reason: str) -> None:
    if os.environ.get("TANTO_REQUIRE_TEST_MODELS"):
        pytest.fail(f"TANTO_REQUIRE_TEST_MODELS is set but {reason}")
    pytest.skip(reason)


def _binary() -> Path | None:
    cands = []
    if os.environ.get("TANTO_BIN"):
        cands.append(Path(os.environ["TANTO_BIN"]))
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    cands += [target / "release" / "tanto", target / "debug" / "tanto"]
    for c in cands:
        if c.is_file():
            ok = subprocess.run(
                [str(c), "serve", "--help"], capture_output=True, check=False
            ).returncode == 0
            if ok:
                return c
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"tanto serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("tanto serve did not become healthy")


@pytest.fixture(scope="session")
def server():
    """(base_url, model_id) of a running server."""
    if os.environ.get("TANTO_BASE_URL"):
        base = os.environ["TANTO_BASE_URL"].rstrip("/")
        model = os.environ.get("TANTO_TEST_MODEL_ID")
        if not model:
            client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
            model = client.models.list().data[0].id
        yield base, model, None, None
        return

    models = Path(os.environ.get("TANTO_TEST_MODELS", Path.home() / ".cache/tanto/test-models"))
    gguf = models / "smollm2-135m-instruct-gguf" / GGUF
    if not gguf.is_file():
        _skip(f"test model {gguf} is absent (run scripts/fetch-test-models.sh)")
    binary = _binary()
    if binary is None:
        _skip("no tanto binary with a `serve` subcommand (set TANTO_BIN)")

    hf_home = Path(tempfile.mkdtemp(prefix="tanto-pytest-"))
    repo = hf_home / "hub" / ("models--" + MODEL_ID.replace("/", "--"))
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (snap / GGUF).symlink_to(gguf)
    # The embedding model, file by file, as huggingface_hub lays it out.
    minilm = models / "all-MiniLM-L6-v2"
    if not minilm.is_dir():
        _skip(f"test model {minilm} is absent (run scripts/fetch-test-models.sh)")
    erepo = hf_home / "hub" / ("models--" + EMBED_ID.replace("/", "--"))
    esnap = erepo / "snapshots" / EMBED_COMMIT
    for f in minilm.rglob("*"):
        if f.is_file():
            dest = esnap / f.relative_to(minilm)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
    (erepo / "refs").mkdir()
    (erepo / "refs" / "main").write_text(EMBED_COMMIT)
    # Whisper: tiny.en (English-only) and base (multilingual), HF layout.
    for repo_id, folder in WHISPER.items():
        src = models / folder
        if not (src / "config.json").is_file():
            _skip(f"test model {src} is absent (run scripts/fetch-test-models.sh)")
        _link_repo(hf_home, repo_id, WHISPER_COMMIT, src)
    _link_repo(hf_home, VLM_ID, VLM_COMMIT, VLM_DIR)

    port = _free_port()
    env = dict(os.environ, HF_HOME=str(hf_home))
    for k in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TANTO_WORKSPACE_HOME", "MLXK_WORKSPACE_HOME"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [str(binary), "serve", "--host", "127.0.0.1", "--port", str(port), "--max-loaded", "3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc)
        yield base, MODEL_ID, binary, env
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("tanto serve did not exit within 15 s of SIGTERM")
            assert code == 0, f"tanto serve exited with {code} after SIGTERM"
        shutil.rmtree(hf_home, ignore_errors=True)


@pytest.fixture(scope="session")
def client(server):
    base = server[0]
    return openai.OpenAI(base_url=f"{base}/v1", api_key=os.environ.get("TANTO_API_KEY", "none"))


@pytest.fixture(scope="session")
def model(server):
    return server[1]


MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


def test_models_list(client, model):
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert model in ids
    m = next(m for m in page.data if m.id == model)
    assert m.object == "model"
    assert isinstance(m.created, int)
    assert m.owned_by
    extra = m.model_extra or {}
    assert "text-generation" in extra["capabilities"]
    assert "chat" in extra["capabilities"]
    assert isinstance(extra["context_length"], int)
    assert isinstance(extra["loaded"], bool)


def test_models_retrieve(client, model):
    m = client.models.retrieve(model)
    assert m.id == model


def test_chat_non_stream(client, model):
    r = client.chat.completions.create(model=model, messages=MESSAGES, temperature=0, max_tokens=16)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert r.model == model
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.message.role == "assistant"
    assert c.message.content and c.message.content.strip()
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0
    assert r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream(client, model):
    full = client.chat.completions.create(model=model, messages=MESSAGES, temperature=0, max_tokens=16)
    stream = client.chat.completions.create(
        model=model,
        messages=MESSAGES,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage, n = "", None, None, 0
    for chunk in stream:
        n += 1
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices:
            d = chunk.choices[0].delta
            text += d.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert n >= 3
    assert finish in ("stop", "length")
    assert text == full.choices[0].message.content, "greedy stream matches the non-streamed answer"
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_completions(client, model):
    r = client.completions.create(model=model, prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 8

    text = ""
    for chunk in client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True
    ):
        if chunk.choices:
            text += chunk.choices[0].text
    assert text == r.choices[0].text


def test_errors_are_typed(client, model):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model-anywhere", messages=MESSAGES)
    assert e.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=MESSAGES, n=2)
    assert "n" in str(e.value)
    assert e.value.response.headers.get("x-request-id")


# --- embeddings -------------------------------------------------------------

TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog.", "Grüße aus Köln 🙂"]


def _cli_vectors(server, texts):
    """The same texts through `tanto embed` (JSONL records) on the same cache."""
    _, _, binary, env = server
    if binary is None:
        pytest.skip("needs the fixture's own server and cache")
    out = subprocess.run(
        [str(binary), "embed", EMBED_ID, *texts],
        env=env, capture_output=True, text=True, check=True,
    )
    import json
    return [json.loads(line)["embedding"] for line in out.stdout.splitlines()]


def _f32(x):
    import struct
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _close(a, b, tol=1e-6):
    """Equal within `tol` as float32 values (JSON floats are f32's shortest form)."""
    assert len(a) == len(b)
    return max(abs(_f32(x) - _f32(y)) for x, y in zip(a, b)) <= tol


def test_embeddings_listed_with_their_capability(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    m = next(m for m in client.models.list().data if m.id == EMBED_ID)
    assert (m.model_extra or {})["capabilities"] == ["embeddings"]


def test_embeddings_sdk_default_base64_float_and_cli_agree(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    default = client.embeddings.create(model=EMBED_ID, input=TEXTS)  # the SDK asks for base64
    floats = client.embeddings.create(model=EMBED_ID, input=TEXTS, encoding_format="float")
    cli = _cli_vectors(server, TEXTS)
    assert [d.index for d in default.data] == [0, 1, 2]
    for d, f, c in zip(default.data, floats.data, cli):
        assert len(d.embedding) == 384
        assert _close(d.embedding, f.embedding, 0.0), "base64 and float must be the same f32 values"
        assert _close(d.embedding, c), "server and `tanto embed` differ"
    # The published all-MiniLM-L6-v2 values for "hello world".
    assert _close(default.data[0].embedding[:4], [-0.0344772, 0.0310232, 0.006735, 0.026109], 1e-6)
    one = client.embeddings.create(model=EMBED_ID, input="hello world")
    assert one.usage.prompt_tokens == 4  # [CLS] hello world [SEP]
    assert one.usage.total_tokens == 4
    assert default.model == EMBED_ID


def test_embeddings_token_arrays(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    text = client.embeddings.create(model=EMBED_ID, input="hello world", encoding_format="float")
    ids = client.embeddings.create(model=EMBED_ID, input=[[101, 7592, 2088, 102]], encoding_format="float")
    assert _close(text.data[0].embedding, ids.data[0].embedding, 1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        [],
        ["ok"] * 10_000,
        ["ok", 3],
        [[101, 99_999_999]],
    ],
    ids=["empty-string", "empty-array", "10k-array", "non-string-item", "token-out-of-vocab"],
)
def test_embeddings_bad_input_is_400_and_server_stays_up(client, server, bad):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBED_ID, input=bad, encoding_format="float")
    assert e.value.status_code == 400
    ok = client.embeddings.create(model=EMBED_ID, input="still up", encoding_format="float")
    assert len(ok.data[0].embedding) == 384


def test_embeddings_one_megabyte_string_is_truncated(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    r = client.embeddings.create(model=EMBED_ID, input="word " * 200_000, encoding_format="float")
    assert r.usage.prompt_tokens == 256  # max_seq_length of all-MiniLM-L6-v2


def test_embeddings_dimensions_and_wrong_model_kind(client, server, model):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    r = client.embeddings.create(model=EMBED_ID, input="x", dimensions=384, encoding_format="float")
    assert len(r.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBED_ID, input="x", dimensions=64)
    assert "384" in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=EMBED_ID, messages=[{"role": "user", "content": "hi"}])
    assert "embedding model" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=model, input="x")


# --- audio (Whisper) --------------------------------------------------------

TINY_EN = "openai/whisper-tiny.en"
BASE = "openai/whisper-base"


def _needs_cache(server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")


def test_audio_models_listed_with_the_audio_capability(client, server):
    _needs_cache(server)
    caps = {m.id: (m.model_extra or {})["capabilities"] for m in client.models.list().data}
    assert "audio" in caps[TINY_EN]
    assert "audio" in caps[BASE]


def test_transcriptions_in_every_response_format(client, server):
    _needs_cache(server)
    with open(FOX_WAV, "rb") as f:
        r = client.audio.transcriptions.create(model=TINY_EN, file=f)
    assert r.text == FOX_TEXT

    with open(FOX_WAV, "rb") as f:
        text = client.audio.transcriptions.create(model=TINY_EN, file=f, response_format="text")
    assert text.strip() == FOX_TEXT

    with open(FOX_WAV, "rb") as f:
        srt = client.audio.transcriptions.create(model=TINY_EN, file=f, response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:03,800\n{FOX_TEXT}\n\n"

    with open(FOX_WAV, "rb") as f:
        vtt = client.audio.transcriptions.create(model=TINY_EN, file=f, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:03.800\n" + FOX_TEXT)

    with open(FOX_WAV, "rb") as f:
        v = client.audio.transcriptions.create(
            model=TINY_EN, file=f, response_format="verbose_json",
            timestamp_granularities=["segment"],
        )
    assert v.text == FOX_TEXT
    assert v.language == "english"
    # duration is seconds of audio, not processing time.
    import wave
    with wave.open(str(FOX_WAV)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(v.duration - seconds) < 0.01
    assert len(v.segments) == 1
    seg = v.segments[0]
    assert (seg.start, seg.end) == (0.0, 3.8)
    assert seg.avg_logprob < 0 and 0 <= seg.no_speech_prob <= 1


def test_multilingual_detects_and_translates(client, server):
    _needs_cache(server)
    with open(FOX_WAV, "rb") as f:
        v = client.audio.transcriptions.create(model=BASE, file=f, response_format="verbose_json")
    assert v.language == "english"
    assert v.text == FOX_TEXT
    with open(FOX_WAV, "rb") as f:
        t = client.audio.translations.create(model=BASE, file=f)
    assert "fox" in t.text.lower()


def test_audio_errors_are_typed(client, server, tmp_path):
    _needs_cache(server)
    # English-only models cannot translate: 422.
    with open(FOX_WAV, "rb") as f, pytest.raises(openai.UnprocessableEntityError) as e:
        client.audio.translations.create(model=TINY_EN, file=f)
    assert e.value.status_code == 422
    assert "English-only" in str(e.value)

    # Opus in Ogg (which this build cannot decode): 415 with the ffmpeg command.
    opus = tmp_path / "voice.ogg"
    opus.write_bytes(b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 64)
    with open(opus, "rb") as f, pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model=TINY_EN, file=f)
    assert e.value.status_code == 415
    assert "ffmpeg" in str(e.value)

    # Over the 25 MB default limit: 413, refused from Content-Length.
    big = tmp_path / "big.wav"
    big.write_bytes(b"\x00" * (27 * 1024 * 1024))
    with open(big, "rb") as f, pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model=TINY_EN, file=f)
    assert e.value.status_code == 413

    # Random bytes: 400, and the server keeps serving.
    junk = tmp_path / "junk.wav"
    junk.write_bytes(bytes((i * 7919) % 251 for i in range(4096)))
    with open(junk, "rb") as f, pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(model=TINY_EN, file=f)
    assert e.value.status_code in (400, 415)

    # Word timestamps are not available: 400 naming the field.
    with open(FOX_WAV, "rb") as f, pytest.raises(openai.BadRequestError) as e:
        client.audio.transcriptions.create(
            model=TINY_EN, file=f, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert "timestamp_granularities" in str(e.value)

    # Chat sent to a Whisper model: the policy's capability error.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=TINY_EN, messages=[{"role": "user", "content": "hi"}])
    assert "speech-to-text" in str(e.value)

    with open(FOX_WAV, "rb") as f:
        assert client.audio.transcriptions.create(model=TINY_EN, file=f).text == FOX_TEXT


def _data_url(path: Path) -> str:
    import base64
    kind = "png" if path.suffix == ".png" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def _image_messages(path: Path, question: str):
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _data_url(path), "detail": "auto"}},
        {"type": "text", "text": question},
    ]}]


def test_vision_model_listed_with_the_vision_capability(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    m = next(m for m in client.models.list().data if m.id == VLM_ID)
    assert "vision" in (m.model_extra or {})["capabilities"]


@pytest.mark.parametrize("image", ["square.png", "exif.jpg"])
def test_image_chat_answers_what_tanto_run_answers(client, server, image):
    """The SDK's image chat and `tanto run --image` give the same greedy answer."""
    if server[2] is None:
        pytest.skip("needs the fixture's own server and cache")
    _, _, binary, env = server
    path = VLM_IMAGES / image
    question = "Describe the image."
    r = client.chat.completions.create(
        model=VLM_ID, messages=_image_messages(path, question), temperature=0, max_tokens=8
    )
    answer = r.choices[0].message.content
    assert 1 <= r.usage.completion_tokens <= 8  # a random model may end early
    stream = client.chat.completions.create(
        model=VLM_ID, messages=_image_messages(path, question), temperature=0, max_tokens=8,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == answer
    # --no-exif: the CLI adds no EXIF context to the prompt, as the server does not.
    import json
    out = subprocess.run(
        [str(binary), "run", VLM_ID, "--image", str(path), "--no-exif", "--temperature", "0",
         "--max-tokens", "8", "--json", question],
        env=env, capture_output=True, text=True, check=True,
    )
    resp = json.loads(out.stdout)["data"]["response"]
    table, sep, cli_answer = resp.partition("</details>\n\n")
    assert sep and table.startswith("<details>"), resp
    assert cli_answer == answer


def test_image_errors_are_typed(client, server):
    if server[2] is None:
        pytest.skip("needs the fixture's cache")
    url = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/cat.png"}},
        {"type": "text", "text": "what is it?"}]}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=VLM_ID, messages=url)
    assert e.value.body["code"] == "remote_image_refused"
    corrupt = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAAAAAAA"}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=VLM_ID, messages=corrupt)
    assert e.value.body["code"] == "invalid_image"
    # An image to the text model: refused by capability, never silently dropped.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL_ID, messages=_image_messages(VLM_IMAGES / "square.png", "what?"))
    assert e.value.body["type"] == "capability_mismatch"
