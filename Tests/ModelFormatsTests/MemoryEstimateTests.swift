import Foundation
import ModelFixtures
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// Memory estimates for well-known architectures, and choosing the variant that fits a GPU.
@Suite struct MemoryEstimateTests {
    struct Architecture: Sendable, CustomTestStringConvertible {
        var name: String
        var config: String
        var parameters: Int64
        var kvCacheBytesPerToken: Int64
        /// At context 8192 with one sequence, and at the model's own context with four.
        var estimate8192: Int64
        var estimateFourAtOwnContext: Int64
        var testDescription: String { name }
    }

    static let architectures: [Architecture] = [
        Architecture(
            name: "Llama-3-8B",
            config:
                #"{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}"#,
            parameters: 8_030_261_248, kvCacheBytesPerToken: 128 << 10, estimate8192: 19_011_032_268,
            estimateFourAtOwnContext: 22_232_257_740
        ),
        Architecture(
            name: "Llama-2-7B",
            config:
                #"{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "max_position_embeddings": 4096, "torch_dtype": "float16"}"#,
            parameters: 6_738_415_616, kvCacheBytesPerToken: 512 << 10, estimate8192: 19_519_381_913,
            estimateFourAtOwnContext: 23_814_349_209
        ),
        Architecture(
            name: "Mistral-7B",
            config:
                #"{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}"#,
            parameters: 7_241_732_096, kvCacheBytesPerToken: 128 << 10, estimate8192: 17_355_121_049,
            estimateFourAtOwnContext: 33_461_248_409
        ),
        Architecture(
            name: "Qwen2-7B",
            config:
                #"{"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}"#,
            parameters: 7_615_616_512, kvCacheBytesPerToken: 56 << 10, estimate8192: 17_536_298_547,
            estimateFourAtOwnContext: 24_582_729_267
        ),
        Architecture(
            name: "Llama-3-70B",
            config:
                #"{"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}"#,
            parameters: 70_553_706_496, kvCacheBytesPerToken: 320 << 10, estimate8192: 151_920_880_025,
            estimateFourAtOwnContext: 159_973_943_705
        ),
        Architecture(
            name: "Gemma-7B",
            config:
                #"{"hidden_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}"#,
            parameters: 8_537_680_896, kvCacheBytesPerToken: 448 << 10, estimate8192: 22_760_968_089,
            estimateFourAtOwnContext: 34_035_257_241
        ),
    ]

    /// The metadata of a 16-bit checkpoint of the architecture: config.json plus one sparse weight file.
    static func metadata(_ architecture: Architecture) throws -> ModelMetadata {
        let directory = try TemporaryDirectory()
        try Data(architecture.config.utf8).write(to: directory.file("config.json"))
        var weights = SafetensorsWriter()
        weights.add("weights", "BF16", [architecture.parameters])
        try weights.write(to: directory.file("model.safetensors"), sparse: true)
        return try #require(try directory.inspect().metadata)
    }

    @Test(arguments: architectures)
    func wellKnownArchitectures(_ architecture: Architecture) throws {
        let metadata = try Self.metadata(architecture)
        #expect(metadata.parameterCount == architecture.parameters)
        #expect(metadata.weightBytes == architecture.parameters * 2)
        #expect(metadata.kvCacheBytesPerToken == architecture.kvCacheBytesPerToken)
        #expect(MemoryEstimate(metadata: metadata, contextLength: 8192).totalBytes == architecture.estimate8192)
        let four = MemoryEstimate(metadata: metadata, concurrency: 4)
        #expect(four.contextLength == metadata.contextLength)
        #expect(four.totalBytes == architecture.estimateFourAtOwnContext)
        #expect(four.totalBytes == four.weightBytes + four.kvCacheBytes! + four.overheadBytes)
        // vLLM's --kv-cache-dtype fp8 halves the cache of a 16-bit model; fp32 doubles it; auto is the model's.
        let cache = try #require(MemoryEstimate(metadata: metadata, contextLength: 8192).kvCacheBytes)
        #expect(MemoryEstimate(metadata: metadata, contextLength: 8192, kvCacheDtype: .fp8).kvCacheBytes == cache / 2)
        #expect(MemoryEstimate(metadata: metadata, contextLength: 8192, kvCacheDtype: .fp32).kvCacheBytes == cache * 2)
        #expect(MemoryEstimate(metadata: metadata, contextLength: 8192, kvCacheDtype: .bf16).kvCacheBytes == cache)
    }

    /// The real layout of Llama-3-8B, tensor by tensor, in a sparse file: about 16.1 GB of weights.
    @Test func llama3_8BTensorByTensor() throws {
        let directory = try TemporaryDirectory()
        try Data(Self.architectures[0].config.utf8).write(to: directory.file("config.json"))
        var weights = SafetensorsWriter()
        weights.add("model.embed_tokens.weight", "BF16", [128_256, 4096])
        for layer in 0..<32 {
            let prefix = "model.layers.\(layer)."
            weights.add(prefix + "self_attn.q_proj.weight", "BF16", [4096, 4096])
            weights.add(prefix + "self_attn.k_proj.weight", "BF16", [1024, 4096])
            weights.add(prefix + "self_attn.v_proj.weight", "BF16", [1024, 4096])
            weights.add(prefix + "self_attn.o_proj.weight", "BF16", [4096, 4096])
            weights.add(prefix + "mlp.gate_proj.weight", "BF16", [14336, 4096])
            weights.add(prefix + "mlp.up_proj.weight", "BF16", [14336, 4096])
            weights.add(prefix + "mlp.down_proj.weight", "BF16", [4096, 14336])
            weights.add(prefix + "input_layernorm.weight", "BF16", [4096])
            weights.add(prefix + "post_attention_layernorm.weight", "BF16", [4096])
        }
        weights.add("model.norm.weight", "BF16", [4096])
        weights.add("lm_head.weight", "BF16", [128_256, 4096])
        try weights.write(to: directory.file("model.safetensors"), sparse: true)
        let metadata = try #require(try directory.inspect().metadata)
        #expect(metadata.parameterCount == 8_030_261_248)
        #expect(metadata.weightBytes == 16_060_522_496)
        #expect(metadata.kvCacheBytesPerToken == 131_072)
        #expect(metadata.architecture == nil && metadata.torchDtype == "bfloat16" && metadata.contextLength == 8192)
    }

    @Test func aFloat32ModelCachesFloat32AndHugeRequestsSaturate() throws {
        let metadata = ModelMetadata(
            parameterCount: 10, dtypeBytes: ["F32": 40], weightBytes: 40, torchDtype: "float32", layers: 2, kvHeads: 2,
            headDim: 4,
            kvCacheBytesPerToken: 2 * 2 * 2 * 4 * 4, weightFiles: ["model.safetensors": "safetensors"]
        )
        #expect(MemoryEstimate(metadata: metadata).contextLength == MemoryEstimate.defaultContextLength)
        let huge = MemoryEstimate(metadata: metadata, contextLength: .max, concurrency: .max)
        #expect(huge.kvCacheBytes == .max && huge.totalBytes == .max)
    }

    static func manifest(weightBytes: Int64, kvPerToken: Int64 = 128 << 10) -> Manifest {
        let metadata = ModelMetadata(
            parameterCount: 8_030_261_248, dtypeBytes: ["BF16": weightBytes], weightBytes: weightBytes,
            contextLength: 8192,
            kvCacheBytesPerToken: kvPerToken, weightFiles: ["model.safetensors": "safetensors"]
        )
        let file = ManifestFile(path: try! ManifestPath("model.safetensors"), digest: Digest.of([1]), size: weightBytes)
        return Manifest(format: .safetensors, files: [file], metadata: metadata)
    }

    static let variants: [(VariantName, Manifest)] = [
        (try! VariantName("awq-int4"), manifest(weightBytes: 5_730_000_000)),
        (try! VariantName("fp16"), manifest(weightBytes: 16_060_522_496)),
        (try! VariantName("gguf-q4_k_m"), manifest(weightBytes: 4_920_000_000)),
        (
            try! VariantName("opaque"),
            Manifest(
                format: .other, files: [ManifestFile(path: try! ManifestPath("w"), digest: Digest.of([2]), size: 1)])
        ),
    ]

    @Test func theHighestPrecisionVariantThatFitsIsChosen() {
        let roomy = VariantFit.choose(Self.variants, budget: 24 << 30, contextLength: 8192, concurrency: 1)
        #expect(roomy.chosen?.value == "fp16")
        #expect(roomy.needs.map(\.variant.value) == ["fp16", "awq-int4", "gguf-q4_k_m", "opaque"])
        #expect(roomy.needs.last?.estimate == nil && roomy.needs.last?.fits == false)

        let small = VariantFit.choose(Self.variants, budget: 12 << 30, contextLength: 8192, concurrency: 1)
        #expect(small.chosen?.value == "awq-int4")
        #expect(small.needs.map(\.fits) == [false, true, true, false])
        // A longer context needs more cache: at 32k, 4 GiB of it, the AWQ variant no longer fits 10 GiB.
        let long = VariantFit.choose(Self.variants, budget: 10 << 30, contextLength: 32768, concurrency: 1)
        #expect(long.chosen?.value == "gguf-q4_k_m")

        let tiny = VariantFit.choose(Self.variants, budget: 2 << 30, contextLength: 8192, concurrency: 1)
        #expect(tiny.chosen == nil && tiny.needs.allSatisfy { !$0.fits })
    }
}
