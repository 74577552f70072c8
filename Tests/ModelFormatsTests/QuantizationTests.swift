import Foundation
import ModelFixtures
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// config.json parsing, quantized checkpoints, and declared quantizations checked against the files.
@Suite struct QuantizationTests {
    static var llamaShape: [String: Any] {
        [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "torch_dtype": "float16",
        ]
    }

    static func config(_ quantization: [String: Any]?) -> [String: Any] {
        var config = llamaShape
        config["quantization_config"] = quantization
        return config
    }

    static func parse(_ json: Any) throws -> ModelConfig {
        let bytes = [UInt8](try JSONSerialization.data(withJSONObject: json))
        return try ModelConfig.parse(MemoryByteSource(bytes), path: "config.json")
    }

    @Test func theShapeOfAModel() throws {
        let config = try Self.parse(Self.llamaShape)
        #expect(config.architecture == "LlamaForCausalLM" && config.hiddenSize == 256 && config.layers == 2)
        #expect(config.attentionHeads == 4 && config.kvHeads == 2 && config.headDim == 64)
        #expect(config.maxPositionEmbeddings == 4096 && config.torchDtype == "float16" && config.quantization == nil)
        // Without num_key_value_heads every head has its own KV; an explicit head_dim wins.
        let mha = try Self.parse([
            "hidden_size": 4096, "num_attention_heads": 32, "head_dim": 256, "num_hidden_layers": 1,
        ])
        #expect(mha.kvHeads == 32 && mha.headDim == 256)
        let multimodal = try Self.parse([
            "architectures": ["Qwen2VLForConditionalGeneration"], "text_config": Self.llamaShape,
        ])
        #expect(multimodal.layers == 2 && multimodal.kvHeads == 2)
    }

    @Test(arguments: [
        (
            #"{"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": true}"#,
            Quantization(method: "awq", bits: 4, groupSize: 128)
        ),
        (
            #"{"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": false, "sym": true}"#,
            Quantization(method: "gptq", bits: 4, groupSize: 128)
        ),
        (#"{"quant_method": "gptq", "bits": 8, "group_size": -1}"#, Quantization(method: "gptq", bits: 8)),
        (
            #"{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"}"#,
            Quantization(method: "bitsandbytes", bits: 4)
        ),
        (#"{"load_in_8bit": true}"#, Quantization(method: "bitsandbytes", bits: 8)),
        (
            #"{"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}"#,
            Quantization(method: "fp8", bits: 8)
        ),
        (
            #"{"quant_method": "compressed-tensors", "format": "pack-quantized", "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "group_size": 128, "strategy": "group", "type": "int"}}}}"#,
            Quantization(method: "compressed-tensors", bits: 4, groupSize: 128)
        ),
    ])
    func quantizationConfigs(_ json: String, _ expected: Quantization) throws {
        let quantization = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(try Self.parse(Self.config(quantization)).quantization == expected)
    }

    @Test func anAWQCheckpointCountsItsPackedWeights() throws {
        let directory = try TemporaryDirectory()
        try directory.write("config.json", json: Self.config(["quant_method": "awq", "bits": 4, "group_size": 128]))
        var weights = SafetensorsWriter()
        weights.add("model.embed_tokens.weight", "F16", [128, 256])
        // AWQ packs 8 4-bit weights an int32 along the output dimension; scales and zeros are per group of 128.
        weights.add("model.layers.0.self_attn.q_proj.qweight", "I32", [256, 256 / 8])
        weights.add("model.layers.0.self_attn.q_proj.qzeros", "I32", [256 / 128, 256 / 8])
        weights.add("model.layers.0.self_attn.q_proj.scales", "F16", [256 / 128, 256])
        try weights.write(to: directory.file("model.safetensors"))
        let inspection = try directory.inspect()
        #expect(inspection.quantization == Quantization(method: "awq", bits: 4, groupSize: 128))
        let metadata = try #require(inspection.metadata)
        #expect(metadata.parameterCount == Int64(128 * 256 + 256 * 256))
        let expectedBytes: [String: Int64] = ["F16": (128 * 256 + 2 * 256) * 2, "I32": (256 * 32 + 2 * 32) * 4]
        #expect(metadata.dtypeBytes == expectedBytes)
        // 2 (K and V) × 2 layers × 2 KV heads × 64 head dim × 2 bytes (float16)
        #expect(metadata.kvCacheBytesPerToken == 1024 && metadata.contextLength == 4096)
        try ManifestVerification.checkQuantization(Quantization(method: "AWQ", bits: 4), against: inspection)
        #expect(throws: RegistryError.self) {
            try ManifestVerification.checkQuantization(Quantization(method: "gptq", bits: 4), against: inspection)
        }
        #expect(throws: RegistryError.self) {
            try ManifestVerification.checkQuantization(Quantization(method: "awq", bits: 8), against: inspection)
        }
        #expect(throws: RegistryError.self) {
            try ManifestVerification.checkQuantization(
                Quantization(method: "awq", bits: 4, groupSize: 64), against: inspection)
        }
    }

    @Test func aGPTQCheckpointCountsItsPackedWeights() throws {
        let directory = try TemporaryDirectory()
        try directory.write("config.json", json: Self.config(["quant_method": "gptq", "bits": 4, "group_size": 128]))
        var weights = SafetensorsWriter()
        // GPTQ packs along the input dimension and keeps a group index a row.
        weights.add("model.layers.0.mlp.down_proj.qweight", "I32", [512 / 8, 256])
        weights.add("model.layers.0.mlp.down_proj.qzeros", "I32", [512 / 128, 256 / 8])
        weights.add("model.layers.0.mlp.down_proj.scales", "F16", [512 / 128, 256])
        weights.add("model.layers.0.mlp.down_proj.g_idx", "I32", [512])
        weights.add("model.norm.weight", "F16", [256])
        try weights.write(to: directory.file("model.safetensors"))
        let inspection = try directory.inspect()
        #expect(inspection.metadata?.parameterCount == Int64(512 * 256 + 256))
        let merged = try ManifestVerification.merge(
            declared: Quantization(method: "gptq"), derivedFrom: try VariantName("fp16"), inspection: inspection
        )
        #expect(merged == Quantization(method: "gptq", bits: 4, groupSize: 128, derivedFrom: try VariantName("fp16")))
    }

    @Test func aConfigThatClaimsQuantizedWeightsOverFullPrecisionTensorsIsRefused() throws {
        let directory = try TemporaryDirectory()
        try directory.write("config.json", json: Self.config(["quant_method": "awq", "bits": 4, "group_size": 128]))
        var weights = SafetensorsWriter()
        weights.add("model.layers.0.self_attn.q_proj.weight", "F16", [256, 256])
        try weights.write(to: directory.file("model.safetensors"))
        let error = try #require(throws: RegistryError.self) { try directory.inspect() }
        #expect(error.code == .invalidModelFile)
        #expect(
            error.message.contains("config.json") && error.message.contains("awq 4-bit")
                && error.message.contains("F16"))
    }

    @Test func aDeclaredQuantizationOverFullPrecisionFilesIsRefused() throws {
        let directory = try TemporaryDirectory()
        try directory.write("config.json", json: Self.llamaShape)
        var weights = SafetensorsWriter()
        weights.add("model.layers.0.self_attn.q_proj.weight", "BF16", [256, 256])
        try weights.write(to: directory.file("model.safetensors"))
        let inspection = try directory.inspect()
        #expect(inspection.quantization == nil)
        let error = try #require(throws: RegistryError.self) {
            try ManifestVerification.checkQuantization(Quantization(method: "awq", bits: 4), against: inspection)
        }
        #expect(error.code == .invalidManifest && error.message.contains("BF16"))
        #expect(throws: RegistryError.self) {
            try ManifestVerification.merge(declared: nil, derivedFrom: try VariantName("fp16"), inspection: inspection)
        }
        #expect(try ManifestVerification.merge(declared: nil, derivedFrom: nil, inspection: inspection) == nil)
    }

    @Test func aGGUFFileTypeIsItsQuantization() throws {
        let directory = try TemporaryDirectory()
        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string("qwen2"))
        gguf.set("general.file_type", .u32(7))
        gguf.add("blk.0.attn_q.weight", "Q8_0", [256, 4])
        try gguf.write(to: directory.file("qwen2-q8_0.gguf"))
        let inspection = try directory.inspect()
        #expect(inspection.quantization == Quantization(method: "q8_0", bits: 8))
        try ManifestVerification.checkQuantization(Quantization(method: "Q8_0"), against: inspection)
        #expect(throws: RegistryError.self) {
            try ManifestVerification.checkQuantization(Quantization(method: "q4_k_m", bits: 4), against: inspection)
        }
    }

    @Test func withoutAFileTypeTheDominantTensorTypeNamesTheQuantization() throws {
        let directory = try TemporaryDirectory()
        var gguf = GGUFWriter()
        gguf.version = 2
        gguf.set("general.architecture", .string("llama"))
        gguf.add("token_embd.weight", "F16", [256, 16])
        gguf.add("blk.0.attn_q.weight", "Q5_K", [256, 8])
        gguf.add("blk.0.attn_k.weight", "Q6_K", [256, 2])
        try gguf.write(to: directory.file("model.gguf"))
        let inspection = try directory.inspect()
        #expect(inspection.gguf["model.gguf"]?.version == 2)
        #expect(inspection.quantization == Quantization(method: "q5_k", bits: 5))
        #expect(inspection.metadata?.parameterCount == Int64(256 * 26))
        let expectedBytes: [String: Int64] = ["F16": 256 * 16 * 2, "Q5_K": 8 * 176, "Q6_K": 2 * 210]
        #expect(inspection.metadata?.dtypeBytes == expectedBytes)
    }

    @Test func pytorchCheckpointsAreRecognisedByTheirContainerNeverUnpickled() throws {
        let directory = try TemporaryDirectory()
        try Data([0x50, 0x4B, 0x03, 0x04] + [UInt8](repeating: 0, count: 60)).write(
            to: directory.file("pytorch_model-00001-of-00002.bin"))
        try Data([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46] + [UInt8](repeating: 0, count: 36)).write(
            to: directory.file("pytorch_model-00002-of-00002.bin"))
        try Data("not a checkpoint".utf8).write(to: directory.file("training_args.bin"))
        try directory.write(
            "pytorch_model.bin.index.json",
            json: ["weight_map": ["a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"]])
        try directory.write("config.json", json: Self.llamaShape)
        let metadata = try #require(try directory.inspect().metadata)
        #expect(
            metadata.weightFiles == [
                "pytorch_model-00001-of-00002.bin": "pytorch-zip", "pytorch_model-00002-of-00002.bin": "pytorch-pickle",
            ])
        #expect(metadata.parameterCount == nil && metadata.weightBytes == 64 + 44)
        #expect(metadata.architecture == "LlamaForCausalLM")
    }
}
