import Foundation
import ModelFixtures
import ModelFormats
import ModelRegistryCore
import ServingPlan
import Testing

/// Plans for real model shapes, each written as header-only files (config.json and sparse weights, or a GGUF
/// header) and inspected as a push inspects them. Expected values are worked out by hand in the comments:
/// usable = ⌊GPU memory × 0.9⌋; weights = ⌈bytes / tp⌉; overhead = 1 GiB + weights / 20;
/// KV a token = 2 × layers × KV heads a GPU × head dim × 2 bytes; cache tokens = (usable − weights − overhead) / KV.
@Suite struct ServingPlanTests {
    static let gib: Int64 = 1 << 30

    /// config.json plus one sparse weight file of `parameters` BF16 weights.
    static func bf16(_ config: String, parameters: Int64) throws -> Manifest {
        let directory = try TemporaryDirectory()
        try Data(config.utf8).write(to: directory.file("config.json"))
        var weights = SafetensorsWriter()
        weights.add("weights", "BF16", [parameters])
        try weights.write(to: directory.file("model.safetensors"), sparse: true)
        return try manifest(directory)
    }

    static func manifest(_ directory: TemporaryDirectory) throws -> Manifest {
        let inspection = try directory.inspect()
        return Manifest(
            format: .safetensors, files: [], quantization: inspection.quantization, metadata: inspection.metadata)
    }

    static let llama3At8B =
        #"{"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}"#
    static let llama3At70B =
        #"{"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "max_position_embeddings": 8192, "torch_dtype": "bfloat16"}"#
    static let qwen2At7B =
        #"{"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}"#

    /// Qwen2-7B quantized with AWQ (4 bits, groups of 128): F16 embeddings and head (152064 × 3584 each),
    /// the other 6,525,621,760 weights packed 8 to an I32, one F16 scale a group: 5,544,763,224 bytes.
    static func qwen2At7BAWQ() throws -> Manifest {
        let directory = try TemporaryDirectory()
        try Data(
            #"{"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768, "torch_dtype": "float16", "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}"#
                .utf8
        ).write(to: directory.file("config.json"))
        var weights = SafetensorsWriter()
        weights.add("model.embed_tokens.weight", "F16", [152064, 3584])
        weights.add("lm_head.weight", "F16", [152064, 3584])
        weights.add("model.layers.qweight", "I32", [815_702_720])
        weights.add("model.layers.scales", "F16", [50_981_420])
        try weights.write(to: directory.file("model.safetensors"), sparse: true)
        return try manifest(directory)
    }

    static func plan(
        _ candidates: [(String, Manifest)], gpuMemory: Int64, gpus: Int = 8, context: Int64? = nil,
        concurrency: Int64 = 1, kvCacheDtype: KVCacheDtype = .auto
    ) throws -> ServingPlan {
        try ServingPlanner.plan(
            model: try ModelName("org/model"), version: try VersionName("1"),
            candidates: try candidates.map { (try VariantName($0.0), $0.1) },
            budget: try GPUBudget(memoryBytes: gpuMemory, maxGPUs: gpus),
            request: try ServingRequest(context: context, concurrency: concurrency, kvCacheDtype: kvCacheDtype))
    }

    static func argument(_ plan: ServingPlan, _ flag: String) -> String? {
        plan.choices.first { $0.flag == flag }?.value
    }

    /// Llama-3-8B BF16 (16,060,522,496 bytes) on 24 GiB GPUs: usable 23,192,823,398; at tp 1 the overhead is
    /// 1,876,767,948 and KV 131,072 a token, so 40,096 tokens fit: the whole 8192 context on one GPU. Eight
    /// sequences of 8192 (65,536 tokens) do not; at tp 2 (8,030,261,248 + 1,475,254,886, 65,536 a token)
    /// 208,851 tokens do. With an fp8 cache one GPU holds 80,193 tokens, enough for 8 × 8192.
    @Test func llama3_8BFitsOneGPUUntilEightLongSequences() throws {
        let manifest = try Self.bf16(Self.llama3At8B, parameters: 8_030_261_248)
        let single = try Self.plan([("bf16", manifest)], gpuMemory: 24 * Self.gib)
        #expect(single.tensorParallelSize == 1 && single.maxModelLen == 8192)
        #expect(single.estimate.cacheTokens == 40_096 && single.estimate.overheadBytes == 1_876_767_948)
        #expect(
            single.vllmArguments == [
                "--model", "/models", "--served-model-name", "org/model", "--tensor-parallel-size", "1",
                "--max-model-len", "8192", "--dtype", "bfloat16", "--kv-cache-dtype", "auto",
                "--gpu-memory-utilization", "0.9",
            ])
        let eight = try Self.plan([("bf16", manifest)], gpuMemory: 24 * Self.gib, context: 8192, concurrency: 8)
        #expect(eight.tensorParallelSize == 2 && eight.maxModelLen == 8192 && eight.estimate.cacheTokens == 208_851)
        let fp8 = try Self.plan(
            [("bf16", manifest)], gpuMemory: 24 * Self.gib, context: 8192, concurrency: 8, kvCacheDtype: .fp8)
        #expect(fp8.tensorParallelSize == 1 && fp8.estimate.cacheTokens == 80_193)
        #expect(Self.argument(fp8, "--kv-cache-dtype") == "fp8")
    }

    /// A release of Qwen2-7B in BF16 (15,231,233,024 bytes) and AWQ (5,544,763,224) on one 16 GiB GPU
    /// (usable 15,461,882,265): BF16 leaves no room at tp 1 (it would at tp 2: 222,926 tokens of 28,672), so
    /// AWQ is chosen: overhead 1,350,979,985, 57,344 a token, 149,381 tokens, the whole 32768 context, in
    /// float16 as AWQ's kernels compute. Sixteen sequences on a 24 GiB GPU: AWQ holds 284,198 tokens, 17,762
    /// a sequence, rounded down to 17,664.
    @Test func qwen2_7BTakesAWQOnOneSixteenGiBGPU() throws {
        let bf16 = try Self.bf16(Self.qwen2At7B, parameters: 7_615_616_512)
        let awq = try Self.qwen2At7BAWQ()
        #expect(awq.quantization?.method == "awq" && awq.metadata?.weightBytes == 5_544_763_224)
        let plan = try Self.plan([("bf16", bf16), ("awq-int4", awq)], gpuMemory: 16 * Self.gib, gpus: 1)
        #expect(plan.variant.value == "awq-int4" && plan.tensorParallelSize == 1 && plan.maxModelLen == 32768)
        #expect(plan.estimate.cacheTokens == 149_381 && plan.estimate.kvCacheBytesPerToken == 57_344)
        #expect(Self.argument(plan, "--dtype") == "float16")
        #expect(Self.argument(plan, "--quantization") == nil, "vLLM reads AWQ from config.json")
        let skipped = try #require(plan.considered.first)
        #expect(skipped.variant.value == "bf16" && skipped.problem?.contains("--gpus 2") == true, "\(skipped)")

        let busy = try Self.plan([("awq-int4", awq)], gpuMemory: 24 * Self.gib, concurrency: 16)
        #expect(busy.tensorParallelSize == 1 && busy.estimate.cacheTokens == 284_198 && busy.maxModelLen == 17_664)
    }

    /// Llama-3-70B BF16 (141,107,412,992 bytes), grouped-query attention with 8 KV heads. On 80 GiB GPUs
    /// (usable 77,309,411,328) tp 2 leaves 13,148 tokens: at least 4096, so the whole 8192 context. Sixteen
    /// sequences of 8192 need 131,072 tokens: tp 4 (2 KV heads a GPU, 81,920 a token) holds 478,454. On 24 GiB
    /// GPUs it takes all 8 (1 KV head a GPU, 40,960 a token: 87,859 tokens); on 16 GiB GPUs 8 is not enough
    /// and 16 would be (125,194 tokens).
    @Test func llama3_70BShardsByItsHeads() throws {
        let manifest = try Self.bf16(Self.llama3At70B, parameters: 70_553_706_496)
        let two = try Self.plan([("bf16", manifest)], gpuMemory: 80 * Self.gib)
        #expect(two.tensorParallelSize == 2 && two.maxModelLen == 8192 && two.estimate.cacheTokens == 13_148)
        let four = try Self.plan([("bf16", manifest)], gpuMemory: 80 * Self.gib, context: 8192, concurrency: 16)
        #expect(four.tensorParallelSize == 4 && four.estimate.kvCacheBytesPerToken == 81_920)
        #expect(four.estimate.cacheTokens == 478_454)
        let eight = try Self.plan([("bf16", manifest)], gpuMemory: 24 * Self.gib)
        #expect(eight.tensorParallelSize == 8 && eight.estimate.kvCacheBytesPerToken == 40_960)
        #expect(eight.estimate.cacheTokens == 87_859 && eight.maxModelLen == 8192)
        do {
            _ = try Self.plan([("bf16", manifest)], gpuMemory: 16 * Self.gib)
            Issue.record("70B BF16 cannot fit eight 16 GiB GPUs")
        } catch let error as RegistryError {
            #expect(error.code == .notFound && error.message.contains("it fits at --gpus 16"), "\(error.message)")
        }
    }

    /// A Q4_K_M GGUF of Llama-3-8B's shape (8,030,261,248 weights in Q4_K blocks of 256 at 144 bytes:
    /// 4,517,021,952 bytes) on one 8 GiB GPU (usable 7,730,941,132): overhead 1,299,592,921, 131,072 a token,
    /// 14,605 tokens: the whole 8192 context. vLLM is pointed at the file; the dtype is left to it.
    @Test func aGGUFIsServedFromItsFile() throws {
        let directory = try TemporaryDirectory()
        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string("llama"))
        gguf.set("general.file_type", .u32(15))
        gguf.set("llama.context_length", .u32(8192))
        gguf.set("llama.embedding_length", .u32(4096))
        gguf.set("llama.block_count", .u32(32))
        gguf.set("llama.attention.head_count", .u32(32))
        gguf.set("llama.attention.head_count_kv", .u32(8))
        gguf.add("weights", "Q4_K", [8_030_261_248])
        try gguf.write(to: directory.file("llama-3-8b.Q4_K_M.gguf"), sparse: true)
        let manifest = try Self.manifest(directory)
        let plan = try Self.plan([("q4_k_m", manifest)], gpuMemory: 8 * Self.gib, gpus: 1)
        #expect(plan.tensorParallelSize == 1 && plan.maxModelLen == 8192 && plan.estimate.cacheTokens == 14_605)
        #expect(Self.argument(plan, "--model") == "/models/llama-3-8b.Q4_K_M.gguf")
        #expect(Self.argument(plan, "--dtype") == "auto" && Self.argument(plan, "--quantization") == nil)
    }

    /// A serving profile's arguments follow the planned ones, a flag with its value as one choice.
    @Test func aProfileAddsItsArgumentsAfterThePlannedOnes() throws {
        let manifest = try Self.bf16(Self.llama3At8B, parameters: 8_030_261_248)
        let plan = try Self.plan([("bf16", manifest)], gpuMemory: 24 * Self.gib)
        let profile = ServingProfile(
            arguments: [
                "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--chat-template=/models/t.jinja",
            ],
            environment: ["VLLM_ATTENTION_BACKEND": "FLASHINFER"])
        let merged = plan.including(profile)
        #expect(
            Array(merged.vllmArguments.dropFirst(plan.vllmArguments.count)) == [
                "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--chat-template", "/models/t.jinja",
            ])
        #expect(merged.choices.count == plan.choices.count + 3 && merged.profile == profile)
        #expect(merged.choices.last?.why.contains("modelreg-serving.json") == true)
    }

    @Test func tokenCountsAreGroupedByThousands() {
        #expect(
            [0, 999, 1000, 86_402_595, -1234].map(ServingPlanner.grouped) == [
                "0", "999", "1,000", "86,402,595", "-1,234",
            ])
    }

    @Test func tensorParallelSizesDivideTheHeads() {
        #expect(ShardedEstimate.tensorParallelSizes(attentionHeads: 32, kvHeads: 8, upTo: 8) == [1, 2, 4, 8])
        #expect(ShardedEstimate.tensorParallelSizes(attentionHeads: 28, kvHeads: 4, upTo: 8) == [1, 2, 4])
        #expect(
            ShardedEstimate.tensorParallelSizes(attentionHeads: 64, kvHeads: 8, upTo: 64) == [1, 2, 4, 8, 16, 32, 64])
        #expect(ShardedEstimate.tensorParallelSizes(attentionHeads: 40, kvHeads: 40, upTo: 8) == [1, 2, 4, 5, 8])
        #expect(ShardedEstimate.tensorParallelSizes(attentionHeads: nil, kvHeads: nil, upTo: 8) == [1])
    }

    /// What cannot be planned says so: a context past the model's, a cache type vLLM has no flag for, a
    /// variant pushed without inspection.
    @Test func whatCannotBePlannedSaysWhy() throws {
        let manifest = try Self.bf16(Self.llama3At8B, parameters: 8_030_261_248)
        #expect(throws: RegistryError.self) { _ = try ServingRequest(kvCacheDtype: .fp16) }
        #expect(throws: RegistryError.self) { _ = try GPUBudget(memoryBytes: Self.gib, utilization: 1.5) }
        do {
            _ = try Self.plan(
                [("bf16", manifest), ("opaque", Manifest(format: .other, files: []))], gpuMemory: 80 * Self.gib,
                context: 16384)
            Issue.record("a context past the model's own must not be planned")
        } catch let error as RegistryError {
            #expect(error.message.contains("longer than the model's own 8192"), "\(error.message)")
            #expect(error.message.contains("opaque: pushed without inspection"), "\(error.message)")
        }
    }
}
