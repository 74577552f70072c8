#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: small valid inputs of each format, one file each, under
OUTDIR/<target>/. The archive target's seed is the genuine cache image, which only the Swift code can lay
out: bench/fuzz.sh asks that target for it."""
import json, os, struct, sys

out = sys.argv[1]


def write(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


hex64 = "0123456789abcdef" * 4
for index, text in enumerate([
    "qwen2-7b", "org/qwen2-7b", "qwen2-7b:1.1", "org/qwen2-7b:2025-06-01", "qwen2-7b@prod",
    "qwen2-7b@canary-2", "qwen2-7b@sha256:" + hex64, "a.b_c-d:V1.0_rc-2", "x/y@z",
]):
    write("fuzz-reference", f"seed-{index}", text)


def manifest(files, **extra):
    return json.dumps({"schemaVersion": 1, "files": files, **extra}, separators=(",", ":"), sort_keys=True)


def entry(path, size, executable=False):
    return {"path": path, "digest": "sha256:" + hex64, "size": size, "executable": executable}


write("fuzz-manifest", "seed-other", manifest([entry("config.json", 22), entry("serving/run.sh", 20, True)], format="other"))
write("fuzz-manifest", "seed-safetensors", manifest(
    [entry("config.json", 600), entry("model.safetensors", 4096), entry("tokenizer/tokenizer.json", 100)],
    format="safetensors", quantization={"method": "awq", "bits": 4, "groupSize": 128, "derivedFrom": "fp16"},
    metadata={"architecture": "LlamaForCausalLM", "parameterCount": 1000, "dtypeBytes": {"F16": 2000},
              "weightBytes": 2000, "torchDtype": "float16", "contextLength": 4096, "layers": 2, "hiddenSize": 64,
              "attentionHeads": 4, "kvHeads": 2, "headDim": 16, "kvCacheBytesPerToken": 256,
              "weightFiles": {"model.safetensors": "safetensors"}}))
write("fuzz-manifest", "seed-gguf", manifest([entry("m.gguf", 1 << 30)], format="gguf"))


def safetensors(tensors, metadata=None):
    header, offset, data = {}, 0, b""
    for name, dtype, shape, size in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
        data += bytes(size)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


write("fuzz-safetensors", "seed-f16", safetensors([("model.embed.weight", "F16", [4, 8], 64), ("lm_head.weight", "BF16", [2, 8], 32)],
                                                   {"format": "pt"}))
write("fuzz-safetensors", "seed-awq", safetensors([("l.qweight", "I32", [8, 1], 32), ("l.scales", "F16", [2], 4),
                                                   ("l.qzeros", "I32", [1], 4), ("x", "F4", [4], 2), ("e", "U8", [0], 0)]))


def gguf_string(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(values, tensors, version=3):
    body = b""
    for key, kind, payload in values:
        body += gguf_string(key) + struct.pack("<I", kind) + payload
    infos, offset = b"", 0
    for name, dims, kind, size in tensors:
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", kind, offset)
        offset += (size + 31) // 32 * 32
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(values)) + body + infos
    head += bytes(-len(head) % 32)
    return head + bytes(offset)


u32 = lambda v: struct.pack("<I", v)
llama = [
    ("general.architecture", 8, gguf_string("llama")), ("general.file_type", 4, u32(15)),
    ("llama.context_length", 4, u32(4096)), ("llama.block_count", 4, u32(2)), ("llama.embedding_length", 4, u32(64)),
    ("llama.attention.head_count", 4, u32(4)), ("llama.attention.head_count_kv", 4, u32(2)),
    ("general.alignment", 4, u32(32)), ("general.name", 8, gguf_string("tiny")),
    ("tokenizer.ggml.tokens", 9, u32(8) + struct.pack("<Q", 2) + gguf_string("a") + gguf_string("b")),
    ("tokenizer.ggml.scores", 9, u32(6) + struct.pack("<Q", 2) + struct.pack("<ff", 0.5, 1.0)),
    ("general.flag", 7, b"\x01"), ("general.nested", 9, u32(9) + struct.pack("<Q", 1) + u32(0) + struct.pack("<Q", 1) + b"\x07"),
]
write("fuzz-gguf", "seed-q4", gguf(llama, [("token_embd.weight", [256, 1], 12, 144), ("blk.0.attn_q.weight", [32, 2], 2, 36),
                                           ("output_norm.weight", [4], 0, 16)]))
write("fuzz-gguf", "seed-v2-f16", gguf([("general.architecture", 8, gguf_string("qwen2")), ("qwen2.block_count", 5, struct.pack("<i", 3))],
                                       [("w", [2, 2], 1, 8)], version=2))
# A recurrent model writes no attention heads (0), and counts come as i32, u64 and i64 as well as u32.
write("fuzz-gguf", "seed-ssm", gguf([("general.architecture", 8, gguf_string("mamba")), ("mamba.block_count", 10, struct.pack("<Q", 2)),
                                     ("mamba.embedding_length", 11, struct.pack("<q", 64)), ("mamba.attention.head_count", 5, struct.pack("<i", 0)),
                                     ("mamba.attention.head_count_kv", 4, u32(0)), ("mamba.context_length", 4, u32(1 << 20))],
                                    [("w", [4], 0, 16)]))

for name, config in {
    "llama": {"architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
              "num_key_value_heads": 8, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"},
    "awq": {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 16,
            "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}},
    "multimodal": {"architectures": ["Llava"], "text_config": {"hidden_size": 64, "n_layer": 2, "n_head": 4}, "dtype": "float32",
                   "quantization_config": {"quant_method": "compressed-tensors",
                                           "config_groups": {"group_0": {"weights": {"num_bits": 8, "group_size": -1}}}}},
    "bnb": {"d_model": 8, "num_layers": 1, "quantization_config": {"load_in_4bit": True}},
}.items():
    write("fuzz-config", f"seed-{name}", json.dumps(config))
