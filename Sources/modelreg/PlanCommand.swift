import ArgumentParser
import ModelFormats
import ModelRegistryCore
import RegistryClient
import ServingPlan

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan how vLLM serves a release on given GPUs: variant, tensor-parallel size, context, arguments.",
        discussion: """
            Chooses the highest-precision variant that fits (as --fit does), the smallest tensor-parallel size it \
            fits at (one vLLM accepts: it divides the attention heads, and divides the KV heads or is a multiple \
            of them), and the longest --max-model-len that size leaves room for; prints vLLM's arguments and why \
            each was chosen. The README gives the per-GPU estimate and its limits.
            """
    )

    @Argument(help: "NAME:VERSION, NAME@ALIAS or NAME@sha256:….")
    var reference: String

    @Option(help: "Memory of each GPU (24GiB, 80G, 16GB).")
    var gpuMemory: String

    @Option(help: "The most GPUs a replica may take (tensor parallelism within one node).")
    var gpus: Int = GPUBudget.defaultMaxGPUs

    @Option(help: "Context every sequence must have (default: the longest that fits, at least 4096 tokens).")
    var context: Int64?

    @Option(help: "Sequences served at once, each with the whole context.")
    var concurrency: Int64 = 1

    @Option(help: "vLLM's --kv-cache-dtype: auto (the model's dtype) or fp8.")
    var kvCacheDtype: String = KVCacheDtype.auto.rawValue

    @Option(help: "vLLM's --gpu-memory-utilization: the share of each GPU it may take.")
    var gpuMemoryUtilization: Double = GPUBudget.defaultUtilization

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        guard let cacheDtype = KVCacheDtype(rawValue: kvCacheDtype) else {
            throw RegistryError(.invalidRequest, "--kv-cache-dtype must be auto or fp8, not '\(kvCacheDtype)'")
        }
        let budget = try GPUBudget(
            memoryBytes: try ByteCount.parse(gpuMemory), maxGPUs: gpus, utilization: gpuMemoryUtilization)
        let request = try ServingRequest(context: context, concurrency: concurrency, kvCacheDtype: cacheDtype)
        let plan = try await client.connection.servingPlan(
            try ModelReference.release(reference), budget: budget, request: request)
        output.print(plan) { Presentation.plan(plan) }
    }
}
