import Foundation

/// Writes a small but real model directory: safetensors weights (optionally sharded, with the index file
/// transformers writes), config and tokenizer files, a nested serving config and an executable script.
enum TestModel {
    struct Tensor {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytesPerElement: Int { dtype == "F32" || dtype == "I32" ? 4 : 2 }
        var byteCount: Int { shape.reduce(1, *) * bytesPerElement }
    }

    static func write(to root: URL, seed: UInt64 = 1, shards: Int = 1, hidden: Int = 64) throws {
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: root.appendingPathComponent("serving"), withIntermediateDirectories: true)
        var generator = SplitMix(state: seed)
        let layers = 2
        var tensors = [Tensor(name: "model.embed_tokens.weight", dtype: "F16", shape: [128, hidden])]
        for layer in 0..<layers {
            for projection in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                tensors.append(
                    Tensor(
                        name: "model.layers.\(layer).self_attn.\(projection).weight", dtype: "BF16",
                        shape: [hidden, hidden]))
            }
            tensors.append(Tensor(name: "model.layers.\(layer).input_layernorm.weight", dtype: "F32", shape: [hidden]))
        }
        tensors.append(Tensor(name: "lm_head.weight", dtype: "F16", shape: [128, hidden]))

        if shards == 1 {
            try safetensors(tensors, generator: &generator).write(to: root.appendingPathComponent("model.safetensors"))
        } else {
            var weightMap: [String: String] = [:]
            let perShard = (tensors.count + shards - 1) / shards
            for shard in 0..<shards {
                let name = String(format: "model-%05d-of-%05d.safetensors", shard + 1, shards)
                let part = Array(
                    tensors[min(shard * perShard, tensors.count)..<min((shard + 1) * perShard, tensors.count)])
                for tensor in part { weightMap[tensor.name] = name }
                try safetensors(part, generator: &generator).write(to: root.appendingPathComponent(name))
            }
            let total = tensors.reduce(0) { $0 + $1.byteCount }
            try json(["metadata": ["total_size": total], "weight_map": weightMap]).write(
                to: root.appendingPathComponent("model.safetensors.index.json"))
        }
        try json([
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "torch_dtype": "float16",
            "vocab_size": 128,
        ]).write(to: root.appendingPathComponent("config.json"))
        try json(["bos_token_id": 1, "eos_token_id": 2, "temperature": 0.7]).write(
            to: root.appendingPathComponent("generation_config.json"))
        try json(["model": ["type": "BPE", "vocab": ["<s>": 0, "</s>": 1, "a": 2]], "version": "1.0"])
            .write(to: root.appendingPathComponent("tokenizer.json"))
        try json(["tokenizer_class": "LlamaTokenizer", "model_max_length": 4096]).write(
            to: root.appendingPathComponent("tokenizer_config.json"))
        try json(["tensor_parallel_size": 1, "max_model_len": 4096]).write(
            to: root.appendingPathComponent("serving/vllm.json"))
        let script = root.appendingPathComponent("serving/start.sh")
        try Data("#!/bin/sh\nexec vllm serve /models --served-model-name tiny\n".utf8).write(to: script)
        try fileManager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
    }

    /// The safetensors container: u64 little-endian header length, JSON header padded to 8 bytes, data.
    static func safetensors(_ tensors: [Tensor], generator: inout SplitMix) throws -> Data {
        var header: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for tensor in tensors {
            header[tensor.name] = [
                "dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.byteCount],
            ]
            offset += tensor.byteCount
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
        var data = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerBytes)
        data.append(contentsOf: (0..<offset).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        return data
    }

    static func json(_ object: Any) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}

/// A tiny deterministic generator, so the same seed always gives the same model bytes.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
