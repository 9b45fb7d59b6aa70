"""A fine-tuned LoRA adapter served by msrkit: the folder, the GGUF conversion, and llama.cpp running it.

The adapters here are synthetic: PEFT-shaped LoRA weights drawn with numpy for
the embedded model's shapes (read from its GGUF), so the conversion and serving
are tested without training. Tests marked ``slow`` run the real engine
(llama-cpp-python in-process); the last one also runs transformers + peft on
the same GGUF (skipped when they are not installed) to check the conversion's
numbers: the Q/K permutation and the alpha/rank scale.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clirun import msrkit

from msrkit.backends.base import ChatRequest, Message
from msrkit.backends.cache import CachedBackend, ResponseCache, request_key
from msrkit.errors import ConfigError, InputError
from msrkit.runtime.prompts import PromptSet
from msrkit.training.adapter import (
    BaseModelInfo,
    DataInfo,
    LoraInfo,
    Manifest,
    PromptInfo,
    TrainingInfo,
    ValidationPoint,
    base_sha256,
    load_adapter,
    prompt_infos,
    read_manifest,
    write_manifest,
)

gguf = pytest.importorskip("gguf", reason="the gguf package is not installed: pip install 'msrkit[train]'")
pytest.importorskip("safetensors", reason="safetensors is not installed: pip install 'msrkit[train]'")
from safetensors.numpy import save_file  # noqa: E402

from msrkit.training.gguf_header import read_gguf_header  # noqa: E402
from msrkit.training.gguf_lora import TARGET_MODULES, llamacpp_rows, write_gguf_lora  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "history.json"
#: llama.cpp's name of each projection -> (PEFT group, PEFT module): spelled out here, independent of the converter
HF_NAMES = {"attn_q": ("self_attn", "q_proj"), "attn_k": ("self_attn", "k_proj"), "attn_v": ("self_attn", "v_proj"),
            "attn_output": ("self_attn", "o_proj"), "ffn_gate": ("mlp", "gate_proj"), "ffn_up": ("mlp", "up_proj"),
            "ffn_down": ("mlp", "down_proj")}  # fmt: skip
RANK, ALPHA = 8, 16.0
N_THREADS = 1
LLAMA = {"n_ctx": 1024, "n_threads": N_THREADS}


# --------------------------------------------------------------------------- building adapters


def base_shapes(base: Path) -> dict[tuple[int, str], tuple[int, int]]:
    """``(layer, llama.cpp name) -> (out, in)`` of every projection of the base GGUF."""
    shapes = {}
    for name, ne in read_gguf_header(base).tensors.items():
        found = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", name)
        if found and found[2] in HF_NAMES:
            shapes[(int(found[1]), found[2])] = (ne[1], ne[0])
    return shapes


def peft_folder(dest: Path, base: Path, *, scale: float = 0.05, seed: int = 0, **config: Any) -> Path:
    """A PEFT LoRA folder for ``base``'s shapes: random A, random non-zero B (``scale``), float32."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for (layer, name), (n_out, n_in) in sorted(base_shapes(base).items()):
        group, module = HF_NAMES[name]
        prefix = f"base_model.model.model.layers.{layer}.{group}.{module}"
        tensors[f"{prefix}.lora_A.weight"] = rng.normal(0, 1 / math.sqrt(n_in), (RANK, n_in)).astype(np.float32)
        tensors[f"{prefix}.lora_B.weight"] = rng.normal(0, scale, (n_out, RANK)).astype(np.float32)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    settings = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0,
                "target_modules": list(TARGET_MODULES), "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
                "use_dora": False, "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
                "base_model_name_or_path": str(base), **config}  # fmt: skip
    (dest / "adapter_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return dest


def manifest(model: Path, **changes: Any) -> Manifest:
    prompts = PromptSet.load()
    fields: dict[str, Any] = dict(
        format="msrkit-adapter", task="rank",
        base=BaseModelInfo(name="llamacpp/default", path=str(model), sha256=base_sha256(model), architecture="llama"),
        prompts=prompt_infos(prompts, ["listwise_rank", "yes_no"]),
        data=DataInfo(sha256="d" * 64, examples=12, train_users=10, validation_users=2),
        lora=LoraInfo(rank=RANK, alpha=ALPHA, dropout=0.0, target_modules=list(TARGET_MODULES)),
        training=TrainingInfo(steps=3, epochs=1.0, tokens=900, seconds=4.5, device="cpu", seed=0,
                              tokens_per_second=200.0, peak_rss_mb=900.0),
        validation=[ValidationPoint(step=3, metric="ndcg@10", value=0.41, loss=1.25)],
        best_step=3, created="2026-12-01T22:00:00Z",
    )  # fmt: skip
    return Manifest(**{**fields, **changes})


def adapter_folder(dest: Path, base: Path, *, scale: float = 0.05, **changes: Any) -> Path:
    """A whole adapter folder, as ``msrkit finetune`` leaves it: peft/, adapter.gguf, manifest.json."""
    peft_folder(dest / "peft", base, scale=scale)
    write_gguf_lora(dest / "peft", dest / "adapter.gguf", base_gguf=base)
    write_manifest(dest, manifest(base, **changes))
    return dest


@pytest.fixture(scope="module")
def base() -> Path:
    from msrkit.backends import embedded_model_path
    from msrkit.errors import MissingDependencyError

    try:
        return embedded_model_path()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def adapter_dir(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return adapter_folder(tmp_path_factory.mktemp("adapter") / "ft", base)


def ask(text: str) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), max_tokens=24, temperature=0.0, seed=0)


def one_line_error(out: Any) -> str:
    """The one ``error:`` line of a command's stderr (a progress bar may come before it), never a traceback."""
    lines = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return str(lines[0])


# --------------------------------------------------------------------------- the folder and its manifest


def test_manifest_round_trip_and_identity_follows_the_file(adapter_dir: Path, base: Path, tmp_path: Path) -> None:
    adapter = load_adapter(adapter_dir)
    assert adapter.manifest == manifest(base)
    assert adapter.gguf_path == adapter_dir.resolve() / "adapter.gguf" and adapter.peft_dir.name == "peft"
    assert adapter.identity == hashlib.sha256(adapter.gguf_path.read_bytes()).hexdigest()
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "adapter.gguf"):
        (copy / name).write_bytes((adapter_dir / name).read_bytes())
    before = load_adapter(copy).identity
    assert before == adapter.identity
    with (copy / "adapter.gguf").open("ab") as fh:
        fh.write(b"\0")
    assert load_adapter(copy).identity == hashlib.sha256((copy / "adapter.gguf").read_bytes()).hexdigest() != before


def _break(data: dict[str, Any], how: str) -> str:
    if how == "json":
        return "{not json"
    if how == "missing":
        del data["lora"]
    elif how == "type":
        data["training"]["steps"] = "many"
    elif how == "format":
        data["format"] = "something-else"
    elif how == "extra":
        data["colour"] = "blue"
    return json.dumps(data)


@pytest.mark.parametrize(
    ("how", "needle"),
    [("json", "not valid JSON (line 1"), ("missing", "manifest.json: lora: Field required"),
     ("type", "manifest.json: training.steps: Input should be a valid integer"),
     ("format", "manifest.json: format: Input should be 'msrkit-adapter'"),
     ("extra", "manifest.json: colour: Extra inputs are not permitted")],
)  # fmt: skip
def test_an_invalid_manifest_names_the_file_and_the_field(adapter_dir: Path, tmp_path: Path, how: str,
                                                          needle: str) -> None:  # fmt: skip
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "adapter.gguf").write_bytes((adapter_dir / "adapter.gguf").read_bytes())
    data = json.loads((adapter_dir / "manifest.json").read_text())
    (folder / "manifest.json").write_text(_break(data, how))
    with pytest.raises(InputError) as info:
        load_adapter(folder)
    assert needle in str(info.value) and str(folder / "manifest.json") in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_manifest_or_gguf_is_an_input_error_naming_the_file(adapter_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"manifest\.json: missing: not an adapter folder"):
        load_adapter(tmp_path)
    (tmp_path / "manifest.json").write_bytes((adapter_dir / "manifest.json").read_bytes())
    with pytest.raises(InputError, match=r"adapter\.gguf: missing: the GGUF LoRA adapter"):
        load_adapter(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        load_adapter(tmp_path / "nowhere")


def test_prompt_warnings_name_each_template_trained_with_another_prompt(base: Path, tmp_path: Path) -> None:
    prompts = PromptSet.load()
    stale = manifest(base, prompts={"listwise_rank": PromptInfo(version=1, hash="0123456789ab"),
                                    "yes_no": PromptInfo(version=prompts["yes_no"].version,
                                                         hash=prompts["yes_no"].hash)})  # fmt: skip
    write_manifest(tmp_path, stale)
    (tmp_path / "adapter.gguf").write_bytes(b"GGUF")
    adapter = load_adapter(tmp_path)
    [warning] = adapter.prompt_warnings(prompts.tags().values())
    assert "'listwise_rank' v1#0123456789ab" in warning and prompts["listwise_rank"].hash in warning
    assert adapter.prompt_warnings([prompts["yes_no"].tag, prompts["item_keywords"].tag, None]) == []


def test_the_manifest_is_written_atomically_and_read_back(base: Path, tmp_path: Path) -> None:
    path = write_manifest(tmp_path, manifest(base, fusion_weight=0.25))
    assert path == tmp_path / "manifest.json" and not list(tmp_path.glob(".*.tmp"))
    assert read_manifest(tmp_path).fusion_weight == 0.25


# --------------------------------------------------------------------------- the GGUF conversion


def test_llamacpp_rows_interleave_each_heads_halves() -> None:
    """Two heads of size 4: HF rows (h0: a0 a1 | b0 b1, h1: c0 c1 | d0 d1) become (a0 b0 a1 b1, c0 d0 c1 d1)."""
    b = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert llamacpp_rows(b, n_head=2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_conversion_writes_llamacpps_names_metadata_and_layout(adapter_dir: Path, base: Path) -> None:
    reader = gguf.GGUFReader(adapter_dir / "adapter.gguf")

    def text(key: str) -> str:
        field = reader.get_field(key)
        return bytes(field.parts[field.data[0]]).decode()

    alpha = reader.get_field("adapter.lora.alpha")
    assert (text("general.type"), text("adapter.type"), text("general.architecture")) == ("adapter", "lora", "llama")
    assert float(alpha.parts[alpha.data[0]][0]) == ALPHA
    got = {t.name: t for t in reader.tensors}
    shapes = base_shapes(base)
    assert set(got) == {f"blk.{i}.{n}.weight.lora_{x}" for (i, n) in shapes for x in "ab"}
    peft = _load_peft(adapter_dir / "peft")
    n_head, n_kv, head = 9, 3, 64  # SmolLM2-135M: 576 = 9 heads x 64; k/v: 3 heads
    for (layer, name), (n_out, n_in) in shapes.items():
        a, b = (np.asarray(got[f"blk.{layer}.{name}.weight.lora_{x}"].data) for x in "ab")
        assert a.shape == (RANK, n_in) and b.shape == (n_out, RANK)  # numpy order: ggml ne reversed
        hf_a, hf_b = peft[(layer, HF_NAMES[name][1])]
        assert np.array_equal(a, hf_a)
        if name not in ("attn_q", "attn_k"):
            assert np.array_equal(b, hf_b)
            continue
        heads = n_head if name == "attn_q" else n_kv
        assert n_out == heads * head
        for h, k, s in ((0, 0, 1), (heads - 1, 5, 0), (1, head // 2 - 1, 1)):
            assert np.array_equal(b[h * head + 2 * k + s], hf_b[h * head + s * head // 2 + k])


def _load_peft(folder: Path) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    from safetensors.numpy import load_file

    raw = load_file(str(folder / "adapter_model.safetensors"))
    out = {}
    for key in raw:
        found = re.fullmatch(r"base_model\.model\.model\.layers\.(\d+)\.\w+\.(\w+)\.lora_A\.weight", key)
        if found:
            out[(int(found[1]), found[2])] = (raw[key], raw[key.replace("lora_A", "lora_B")])
    return out


def test_the_header_reader_agrees_with_ggufs_own_reader(adapter_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "arrays.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "", "héllo"] * 50)
    writer.add_array("tokenizer.ggml.scores", [0.5, -1.0] * 30)
    writer.add_uint32("llama.block_count", 7)
    writer.add_float64("x.ratio", 0.25)
    writer.add_bool("x.flag", True)
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((3, 5), dtype=np.float32))
    writer.add_tensor("token_embd.weight", np.zeros((2, 4, 6), dtype=np.float16))
    for step in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        step()
    writer.close()
    for file in (path, adapter_dir / "adapter.gguf"):
        ours, theirs = read_gguf_header(file), gguf.GGUFReader(file)
        assert ours.tensors == {t.name: tuple(int(n) for n in t.shape) for t in theirs.tensors}
        scalars = {f.name: f.contents() for f in theirs.fields.values()
                   if not f.name.startswith("GGUF.") and not isinstance(f.contents(), list)}  # fmt: skip
        assert ours.metadata == pytest.approx(scalars)
    assert read_gguf_header(path).metadata["llama.block_count"] == 7
    (tmp_path / "not.gguf").write_bytes(b"nope" * 10)
    with pytest.raises(ConfigError, match="not a readable GGUF file: no GGUF magic"):
        read_gguf_header(tmp_path / "not.gguf")


def test_rslora_scale_is_written_as_llamacpps_alpha(base: Path, tmp_path: Path) -> None:
    peft_folder(tmp_path / "peft", base, use_rslora=True)
    reader = gguf.GGUFReader(write_gguf_lora(tmp_path / "peft", tmp_path / "a.gguf", base_gguf=base))
    alpha = reader.get_field("adapter.lora.alpha")
    # llama.cpp scales by alpha/rank; rsLoRA by lora_alpha/sqrt(rank)
    assert float(alpha.parts[alpha.data[0]][0]) / RANK == pytest.approx(ALPHA / math.sqrt(RANK))


def _other_base(tmp_path: Path) -> Path:
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(path, arch="gpt2")
    writer.add_tensor("blk.0.attn_qkv.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _extra_tensor(folder: Path, name: str, shape: tuple[int, int] = (RANK, 576)) -> None:
    from safetensors.numpy import load_file

    raw = dict(load_file(str(folder / "adapter_model.safetensors")))
    raw[name] = np.zeros(shape, dtype=np.float32)
    save_file(raw, str(folder / "adapter_model.safetensors"))


@pytest.mark.parametrize(
    ("case", "needle"),
    [("target", "llama.cpp cannot map target module(s) ['lm_head']"),
     ("tensor", "is not a LoRA of q_proj"),
     ("dora", "DoRA cannot be written"),
     ("arch", "is a 'gpt2' model: only llama-architecture"),
     ("shape", "trained on another base model?")],
)  # fmt: skip
def test_what_llamacpp_cannot_load_is_refused_in_one_line(base: Path, tmp_path: Path, case: str, needle: str) -> None:
    folder = peft_folder(tmp_path / "peft", base, **({"use_dora": True} if case == "dora" else {}))
    if case == "target":
        peft_folder(folder, base, target_modules=[*TARGET_MODULES, "lm_head"])
    if case == "tensor":
        _extra_tensor(folder, "base_model.model.model.embed_tokens.lora_A.weight")
    if case == "shape":
        _extra_tensor(folder, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", (RANK, 512))
    target = _other_base(tmp_path) if case == "arch" else base
    with pytest.raises(ConfigError) as info:
        write_gguf_lora(folder, tmp_path / "out.gguf", base_gguf=target)
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out.gguf").exists()


# --------------------------------------------------------------------------- serving: checks without running the model


def test_identity_and_cache_key_hold_the_adapter(adapter_dir: Path, base: Path) -> None:
    from msrkit.backends.llamacpp import LlamaCppBackend

    plain = LlamaCppBackend(base, **LLAMA)
    tuned = LlamaCppBackend(base, adapter=load_adapter(adapter_dir), **LLAMA)
    assert "adapter" not in plain.identity()
    assert tuned.identity()["adapter"] == load_adapter(adapter_dir).identity
    assert request_key(plain.identity(), ask("hi")) != request_key(tuned.identity(), ask("hi"))
    assert plain._key(False) != tuned._key(False)  # a base and an adapted model are two shared models


def test_a_base_mismatch_is_one_line_naming_both(adapter_dir: Path, base: Path, tmp_path: Path) -> None:
    from msrkit.backends.llamacpp import LlamaCppBackend

    wrong = manifest(base, base=BaseModelInfo(name="my-other.gguf", path="/models/my-other.gguf", sha256="f" * 64,
                                              architecture="llama"))  # fmt: skip
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "adapter.gguf").write_bytes((adapter_dir / "adapter.gguf").read_bytes())
    write_manifest(folder, wrong)
    with pytest.raises(ConfigError) as info:
        LlamaCppBackend(base, adapter=load_adapter(folder), **LLAMA)
    message = str(info.value)
    assert "my-other.gguf (sha256 ffffffffffff)" in message and str(base) in message
    assert base_sha256(base)[:12] in message and "\n" not in message
    out = msrkit("rank", str(EXAMPLE), "--backend", "llamacpp/default", "--adapter", str(folder), "--no-cache")
    assert out.returncode == 4 and "was trained on my-other.gguf" in one_line_error(out)


def test_the_cli_reports_a_bad_adapter_folder_in_one_line_exit_3(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": "msrkit-adapter"}')
    items = tmp_path / "items.jsonl"
    items.write_text('{"item_id": "a", "title": "A"}\n{"item_id": "b", "title": "B"}\n')
    for command in (["rank", str(EXAMPLE)], ["summarize", str(items)], ["eval-keywords", str(items)]):
        out = msrkit(*command, "--backend", "llamacpp/default", "--adapter", str(tmp_path), "--no-cache")
        assert out.returncode == 3, (command, out.stderr)
        assert "manifest.json: " in one_line_error(out)


@pytest.mark.parametrize(
    ("backend", "needles"),
    [("ollama/smollm2:135m", ["FROM smollm2:135m", "adapter.gguf", "ollama create NAME -f Modelfile"]),
     ("openai/gpt-4o-mini", ["--enable-lora --lora-modules NAME=", "/peft", "--lora ", "--backend openai/NAME"])],
)  # fmt: skip
def test_server_backends_say_how_they_serve_an_adapter(adapter_dir: Path, backend: str, needles: list[str]) -> None:
    from msrkit.backends import get_backend

    with pytest.raises(ConfigError) as info:
        get_backend(backend, adapter=load_adapter(adapter_dir))
    assert all(n in str(info.value) for n in needles), str(info.value)
    out = msrkit("rank", str(EXAMPLE), "--backend", backend, "--adapter", str(adapter_dir), "--no-cache")
    assert out.returncode == 4 and needles[0] in one_line_error(out)


def test_auto_with_an_adapter_serves_it_on_its_base_in_process(adapter_dir: Path, base: Path) -> None:
    from msrkit.backends import get_backend
    from msrkit.backends.llamacpp import LlamaCppBackend

    backend = get_backend("auto", adapter=load_adapter(adapter_dir))
    assert isinstance(backend, LlamaCppBackend) and backend.path == base.resolve() and backend.adapter is not None
    assert get_backend("none", adapter=load_adapter(adapter_dir)) is None  # retrieval only (eval's ablation)


def test_adapter_setting_from_a_config_file_is_relative_to_it(tmp_path: Path) -> None:
    from msrkit.config import load_settings

    (tmp_path / "msrkit.toml").write_text('adapter = "runs/ft"\n')
    settings, sources = load_settings({}, cwd=tmp_path, env={})
    assert settings.adapter == tmp_path / "runs" / "ft" and sources["adapter"] == "msrkit.toml"
    settings, sources = load_settings({}, cwd=tmp_path, env={"MSRKIT_ADAPTER": "/x/ft"})
    assert settings.adapter == Path("/x/ft") and sources["adapter"] == "env MSRKIT_ADAPTER"


def test_an_adapter_setting_with_a_backend_object_is_refused(adapter_dir: Path) -> None:
    from msrkit.backends.fake import FakeBackend
    from msrkit.recommender import Recommender

    with pytest.raises(ConfigError, match="applies to a backend named in the settings"):
        Recommender(FakeBackend(), adapter=adapter_dir, cache=False)


# --------------------------------------------------------------------------- serving on the real engine


@pytest.mark.slow
def test_the_adapted_model_answers_differently_and_never_reads_the_bases_cache(
    adapter_dir: Path, base: Path, tmp_path: Path
) -> None:
    from msrkit.backends.llamacpp import _MODELS, LlamaCppBackend

    cache = ResponseCache(tmp_path / "cache")
    plain = CachedBackend(LlamaCppBackend(base, **LLAMA), cache)
    tuned = CachedBackend(LlamaCppBackend(base, adapter=load_adapter(adapter_dir), **LLAMA), cache)
    prompts = ["Name one fruit.", "Write a short sentence about rivers.", "What is the capital of France?"]
    try:
        before = [plain.chat(ask(p)) for p in prompts]
        after = [tuned.chat(ask(p)) for p in prompts]
        assert not any(r.cached for r in before + after)  # the base's answers are cached, but not the adapter's
        assert sum(a.text != b.text for a, b in zip(after, before, strict=True)) >= 2, [
            (a.text, b.text) for a, b in zip(after, before, strict=True)
        ]
        assert len([k for k in _MODELS if k[0] == str(base.resolve())]) >= 2  # both loaded at once
        again = [tuned.chat(ask(p)) for p in prompts]
        assert all(r.cached for r in again) and [r.text for r in again] == [r.text for r in after]
    finally:
        plain.close()
        tuned.close()


RERANK = ["--no-item-summaries", "--no-preference-summary", "-o", f"n_threads={N_THREADS}", "-o", "n_ctx=2048"]


@pytest.mark.slow
def test_rank_with_adapter_from_the_cli_differs_from_the_base_and_has_its_own_cache(
    adapter_dir: Path, tmp_path: Path
) -> None:
    common = ["rank", str(EXAMPLE), "--backend", "llamacpp/default", "--json", "--cache-dir", str(tmp_path), *RERANK]
    plain = msrkit(*common, timeout=300)
    tuned = msrkit(*common, "--adapter", str(adapter_dir), timeout=300)
    assert plain.returncode == 0 and tuned.returncode == 0, plain.stderr + tuned.stderr
    p, t = json.loads(plain.stdout), json.loads(tuned.stdout)
    assert t["usage"]["cache_hits"] == 0 and t["usage"]["llm_calls"] > 0
    shown = [[(r["item_id"], r["reason"]) for r in x["ranking"]] for x in (p, t)]
    assert sorted(i for i, _ in shown[1]) == sorted(i for i, _ in shown[0])  # still a permutation
    # the two models' answers to the same ranking prompt, as the cache holds them (one entry each): they differ
    # (the final order may not: both can echo the order shown, which the repair then keeps)
    import diskcache

    with diskcache.Cache(str(tmp_path)) as stored:
        answers = [json.loads(stored[k])["text"] for k in stored]
    assert len(answers) == 2 and answers[0] != answers[1], answers
    again = json.loads(msrkit(*common, "--adapter", str(adapter_dir), timeout=300).stdout)
    assert again["usage"]["llm_calls"] == 0 and again["ranking"] == t["ranking"]


@pytest.mark.slow
def test_a_stale_prompt_reaches_the_rankings_warnings(base: Path, tmp_path: Path) -> None:
    from msrkit.recommender import Recommender, Stages

    folder = adapter_folder(tmp_path / "ft", base,
                            prompts={"listwise_rank": PromptInfo(version=1, hash="0123456789ab")})  # fmt: skip
    stages = Stages(item_summaries=False, preference_summary=False)
    with Recommender("llamacpp/default", adapter=folder, stages=stages, cache=False, explain=False,
                     backend_options=LLAMA) as rec:  # fmt: skip
        ranking = rec.rank(EXAMPLE)
    assert any("'listwise_rank' v1#0123456789ab" in w for w in ranking.warnings), ranking.warnings


# --------------------------------------------------------------------------- the numbers: peft vs llama.cpp

PARITY_PROMPTS = ["The capital of France is", "Once upon a time, a small dog",
                  "Recommend a movie for someone who liked Alien:"]  # fmt: skip


def _llama_logits(base: Path, token_lists: list[list[int]], lora: Path | None = None) -> list[np.ndarray]:
    import llama_cpp

    from msrkit.backends.llamacpp_amx import guard_amx

    guard_amx()
    llm = llama_cpp.Llama(model_path=str(base), n_ctx=256, n_threads=N_THREADS, logits_all=True, verbose=False,
                          lora_path=str(lora) if lora else None)  # fmt: skip
    out = []
    for ids in token_lists:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[len(ids) - 1]))
    llm.close()
    return out


def _peft_model(base: Path) -> Any:
    """SmolLM2 as transformers reads the GGUF (dequantized, q/k un-permuted) with a random LoRA (B non-zero)."""
    torch = pytest.importorskip("torch", reason="torch is not installed: pip install 'msrkit[train]'")
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed: pip install 'msrkit[train]'"
    )
    peft = pytest.importorskip("peft", reason="peft is not installed: pip install 'msrkit[train]'")
    torch.set_num_threads(N_THREADS)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base.parent), gguf_file=base.name,
                                                              dtype=torch.float32)  # fmt: skip
    config = peft.LoraConfig(r=RANK, lora_alpha=32, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                             init_lora_weights=False)  # fmt: skip
    torch.manual_seed(0)  # lora_A's random init draws from the global generator: fix it, as lora_B's below
    tuned = peft.get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.06)
    return tuned.eval()


def _hf_logits(model: Any, token_lists: list[list[int]]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0, -1].numpy() for ids in token_lists]


def _agrees(hf: np.ndarray, cpp: np.ndarray, hf_base: np.ndarray, cpp_base: np.ndarray) -> bool:
    """The adapted models agree as closely as the base models do (Q4_1 vs dequantized float32 keeps a gap)."""
    base_gap = float(np.abs(hf_base - cpp_base).max())
    effect, cpp_effect = hf - hf_base, cpp - cpp_base
    same_top1 = int(hf.argmax()) == int(cpp.argmax())
    close = float(np.abs(hf - cpp).max()) <= 3 * base_gap
    same_size = 0.8 <= float(np.linalg.norm(cpp_effect) / np.linalg.norm(effect)) <= 1.25  # the scale alpha/rank
    same_direction = float(np.linalg.norm(cpp_effect - effect)) <= 0.3 * float(np.linalg.norm(effect))
    return same_top1 and close and same_size and same_direction


@pytest.mark.slow
@pytest.mark.timeout(900)  # transformers' GGUF load / a server start: minutes on a busy machine
def test_the_same_lora_in_transformers_and_in_llamacpp_gives_the_same_next_token(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proof of the conversion's numbers: next-token top-1 equal, logits as close as the bases', the LoRA's
    effect the same size (scale alpha/rank) and direction; without the q/k permutation the same check fails."""
    import llama_cpp

    import msrkit.training.gguf_lora as gguf_lora

    model = _peft_model(base)
    probe = llama_cpp.Llama(model_path=str(base), n_ctx=64, n_threads=N_THREADS, vocab_only=True, verbose=False)
    tokens = [probe.tokenize(p.encode(), add_bos=False) for p in PARITY_PROMPTS]
    probe.close()
    with model.disable_adapter():
        hf_base = _hf_logits(model, tokens)
    hf_tuned = _hf_logits(model, tokens)
    model.save_pretrained(tmp_path / "peft")
    cpp_base = _llama_logits(base, tokens)
    cpp_tuned = _llama_logits(base, tokens, write_gguf_lora(tmp_path / "peft", tmp_path / "a.gguf", base_gguf=base))
    for hb, ht, cb in zip(hf_base, hf_tuned, cpp_base, strict=True):
        assert np.abs(ht - hb).max() >= 5 * np.abs(hb - cb).max()  # the LoRA moves logits far more than Q4_1 does
    assert all(map(_agrees, hf_tuned, cpp_tuned, hf_base, cpp_base))
    monkeypatch.setattr(gguf_lora, "llamacpp_rows", lambda b, n_head: b)
    unpermuted = _llama_logits(base, tokens, write_gguf_lora(tmp_path / "peft", tmp_path / "b.gguf", base_gguf=base))
    assert not all(map(_agrees, hf_tuned, unpermuted, hf_base, cpp_base))


@pytest.mark.slow
@pytest.mark.timeout(900)  # transformers' GGUF load / a server start: minutes on a busy machine
def test_llamacpps_server_with_lora_path_serves_what_the_in_process_adapter_answers(
    adapter_dir: Path, base: Path
) -> None:
    """The serving line of docs/finetune-serving.md: ``python -m llama_cpp.server --lora_path DIR/adapter.gguf``
    answers as the adapted model does, not as the base does."""
    from conftest import _llama_server

    from msrkit.backends import get_backend
    from msrkit.backends.llamacpp import LlamaCppBackend

    prompts = ["Name one fruit.", "Write a short sentence about rivers.", "What is the capital of France?"]
    local = LlamaCppBackend(base, adapter=load_adapter(adapter_dir), **LLAMA)
    plain = LlamaCppBackend(base, **LLAMA)
    try:
        tuned_here = [local.chat(ask(p)).text for p in prompts]
        base_here = [plain.chat(ask(p)).text for p in prompts]
    finally:
        local.close()
        plain.close()
    with _llama_server(base, "--lora_path", str(adapter_dir / "adapter.gguf")) as url:
        served = get_backend("openai/smollm2", base_url=url, api_key="none")
        assert served is not None
        answers = [served.chat(ask(p)).text for p in prompts]
        served.close()
    # not byte for byte (the server's llama.cpp settings differ a little), but the adapted model's answers:
    # each at least as close to the in-process adapter's as to the base's, and closer on most prompts
    shared = [(len(os.path.commonprefix([a, t])), len(os.path.commonprefix([a, b])))
              for a, t, b in zip(answers, tuned_here, base_here, strict=True)]  # fmt: skip
    assert all(t >= b for t, b in shared) and sum(t > b for t, b in shared) >= 2, (answers, tuned_here, base_here)
