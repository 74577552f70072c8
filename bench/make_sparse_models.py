"""Writes a 10 GiB safetensors file and a 10 GiB GGUF file whose data is a hole (sparse), with the
headers of a 5B-parameter Llama-style model: 22 layers, 9 tensors a layer, and a 32k-token vocabulary
in the GGUF metadata. Standard library only."""
import json
import struct
import sys

out = sys.argv[1]
size = 10 << 30
hidden, ffn, layers, vocab = 4096, 14336, 22, 32000

def layer_tensors():
    yield "embed", [vocab, hidden]
    for i in range(layers):
        for name, shape in [("q", [hidden, hidden]), ("k", [1024, hidden]), ("v", [1024, hidden]), ("o", [hidden, hidden]),
                            ("gate", [ffn, hidden]), ("up", [ffn, hidden]), ("down", [hidden, ffn]),
                            ("norm1", [hidden]), ("norm2", [hidden])]:
            yield f"model.layers.{i}.{name}.weight", shape
    yield "lm_head", [vocab, hidden]

def elements(shape):
    n = 1
    for d in shape:
        n *= d
    return n

# safetensors: BF16 tensors back to back; a last tensor fills the file to exactly 10 GiB.
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape in layer_tensors():
    nbytes = elements(shape) * 2
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
    offset += nbytes
text = json.dumps(header).encode()
def encoded(fill):
    h = dict(header)
    h["padding"] = {"dtype": "U8", "shape": [fill], "data_offsets": [offset, offset + fill]}
    t = json.dumps(h).encode()
    return t + b" " * (-len(t) % 8)
fill = size - 8 - offset - len(encoded(0)) - 64
body = encoded(fill)
fill = size - 8 - offset - len(body)
body = encoded(fill)
assert fill >= 0 and 8 + len(body) + offset + fill == size, "header length changed while sizing"
with open(f"{out}/sparse-10g.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(body)) + body)
    f.truncate(size)

# GGUF v3: metadata with a 32k-token vocabulary, F16 tensors, data aligned to 32 bytes.
def s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b
kv = [
    s("general.architecture") + struct.pack("<I", 8) + s("llama"),
    s("general.file_type") + struct.pack("<II", 4, 1),
    s("llama.context_length") + struct.pack("<II", 4, 8192),
    s("llama.block_count") + struct.pack("<II", 4, layers),
    s("llama.embedding_length") + struct.pack("<II", 4, hidden),
    s("llama.attention.head_count") + struct.pack("<II", 4, 32),
    s("llama.attention.head_count_kv") + struct.pack("<II", 4, 8),
    s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, vocab) + b"".join(s(f"token{i}") for i in range(vocab)),
]
infos, offset = [], 0
tensors = list(layer_tensors())
for name, shape in tensors:
    dims = list(reversed(shape))
    infos.append(s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 1, offset))
    offset += (elements(shape) * 2 + 31) // 32 * 32
head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kv)) + b"".join(kv) + b"".join(infos)
head += b"\0" * (-len(head) % 32)
assert len(head) + offset <= size
with open(f"{out}/sparse-10g.gguf", "wb") as f:
    f.write(head)
    f.truncate(size)
print(f"{out}/sparse-10g.safetensors {out}/sparse-10g.gguf")
