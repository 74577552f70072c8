import Foundation
import ModelFixtures
import TestServers
import Testing

/// The formats' own Python packages (`safetensors`, `gguf`, installed by `.ci/test`): they write the fixture
/// files, and their readers report what is in them, so modelreg's parse is compared with the reference.
enum ReferenceReaders {
    /// Writes a single-file and a sharded safetensors model and a GGUF file with k-quant tensors under the
    /// directory given as argument, then prints, as JSON, what the reference readers find in each file.
    static let script = #"""
        import json, os, sys
        import numpy as np
        import gguf
        from safetensors import safe_open
        from safetensors.numpy import save_file

        out = sys.argv[1]
        rng = np.random.default_rng(7)
        report = {"safetensors": {}, "gguf": {}}

        def read_safetensors(path):
            with safe_open(path, "numpy") as f:
                tensors = {k: {"dtype": f.get_slice(k).get_dtype(), "shape": list(f.get_slice(k).get_shape())} for k in f.keys()}
                return {"metadata": f.metadata() or {}, "tensors": tensors}

        os.makedirs(f"{out}/single")
        save_file({
            "model.embed_tokens.weight": rng.standard_normal((64, 32)).astype(np.float16),
            "model.layers.0.mlp.up_proj.weight": rng.standard_normal((48, 32)).astype(np.float16),
            "model.norm.weight": np.ones(32, dtype=np.float32),
            "model.layers.0.mlp.down_proj.weight": rng.standard_normal((32, 48)).astype(np.float64),
            "quantized.int8": np.zeros((4, 8), dtype=np.int8),
            "position_ids": np.arange(16, dtype=np.int64),
            "step": np.array(3, dtype=np.int32),
            "mask": np.array([True, False, True]),
        }, f"{out}/single/model.safetensors", metadata={"format": "pt", "source": "reference"})
        report["safetensors"]["single/model.safetensors"] = read_safetensors(f"{out}/single/model.safetensors")

        os.makedirs(f"{out}/sharded")
        weight_map = {}
        names = [f"model.layers.{i}.self_attn.{p}.weight" for i in range(3) for p in ("q_proj", "k_proj", "v_proj", "o_proj")]
        for shard in range(3):
            file = f"model-{shard + 1:05d}-of-00003.safetensors"
            part = {n: rng.standard_normal((32, 32)).astype(np.float16) for n in names[shard * 4:(shard + 1) * 4]}
            save_file(part, f"{out}/sharded/{file}", metadata={"format": "pt"})
            weight_map.update({n: file for n in part})
            report["safetensors"][f"sharded/{file}"] = read_safetensors(f"{out}/sharded/{file}")
        with open(f"{out}/sharded/model.safetensors.index.json", "w") as f:
            json.dump({"metadata": {"total_size": 12 * 32 * 32 * 2}, "weight_map": weight_map}, f)

        os.makedirs(f"{out}/gguf")
        path = f"{out}/gguf/model-q4_k_m.gguf"
        w = gguf.GGUFWriter(path, "llama")
        w.add_context_length(2048)
        w.add_embedding_length(256)
        w.add_block_count(2)
        w.add_head_count(4)
        w.add_head_count_kv(2)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_token_list([f"tok{i}" for i in range(300)])
        w.add_tensor("token_embd.weight", rng.standard_normal((16, 256)).astype(np.float32))
        w.add_tensor("output_norm.weight", np.ones(256, dtype=np.float16))
        w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor("blk.0.ffn_gate.weight", gguf.quants.quantize(rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q4_0), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        for name, qtype in [("blk.0.attn_q.weight", "Q4_K"), ("blk.0.attn_k.weight", "Q2_K"), ("blk.0.attn_v.weight", "Q6_K"),
                            ("blk.1.attn_q.weight", "Q3_K"), ("blk.1.attn_k.weight", "Q5_K"), ("blk.1.attn_v.weight", "IQ4_XS")]:
            t = gguf.GGMLQuantizationType[qtype]
            block, size = gguf.GGML_QUANT_SIZES[t]
            w.add_tensor(name, rng.integers(0, 256, (3, 512 // block * size), dtype=np.uint8), raw_dtype=t)
        w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
        r = gguf.GGUFReader(path)
        report["gguf"]["gguf/model-q4_k_m.gguf"] = {
            "version": int(r.fields["GGUF.version"].contents()),
            "architecture": r.fields["general.architecture"].contents(),
            "file_type": int(r.fields["general.file_type"].contents()),
            "context_length": int(r.fields["llama.context_length"].contents()),
            "quantization_version": int(r.fields["general.quantization_version"].contents()),
            "token_count": len(r.fields["tokenizer.ggml.tokens"].contents()),
            "tensors": {t.name: {"type": t.tensor_type.name, "shape": [int(d) for d in t.shape], "elements": int(t.n_elements), "bytes": int(t.n_bytes)} for t in r.tensors},
        }
        print(json.dumps(report))
        """#

    struct Report: Decodable {
        struct SafetensorsFile: Decodable {
            struct Tensor: Decodable {
                var dtype: String
                var shape: [Int64]
            }
            var metadata: [String: String]
            var tensors: [String: Tensor]
        }

        struct GGUFFile: Decodable {
            struct Tensor: Decodable {
                var type: String
                var shape: [Int64]
                var elements: Int64
                var bytes: Int64
            }
            var version: UInt32
            var architecture: String
            var fileType: Int64
            var contextLength: Int64
            var quantizationVersion: Int64
            var tokenCount: Int
            var tensors: [String: Tensor]

            enum CodingKeys: String, CodingKey {
                case version, architecture, tensors
                case fileType = "file_type"
                case contextLength = "context_length"
                case quantizationVersion = "quantization_version"
                case tokenCount = "token_count"
            }
        }

        var safetensors: [String: SafetensorsFile]
        var gguf: [String: GGUFFile]
    }

    /// Runs the script into `directory` and decodes its report.
    static func generate(into directory: URL) throws -> Report {
        let script = directory.appendingPathComponent("reference.py")
        try Data(Self.script.utf8).write(to: script)
        let output = directory.appendingPathComponent("report.json")
        let errors = directory.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, directory.appendingPathComponent("models").path]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.runAlone()
        process.waitUntilExit()
        try FileManager.default.removeItem(at: script)
        let stderr = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
        try #require(
            process.terminationStatus == 0,
            "python3 with safetensors, gguf and numpy is needed (`python3 -m pip install safetensors gguf numpy`, as .ci/test does): \(stderr)"
        )
        return try JSONDecoder().decode(Report.self, from: Data(contentsOf: output))
    }
}
