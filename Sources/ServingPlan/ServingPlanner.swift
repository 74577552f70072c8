import ModelFormats
import ModelRegistryCore

/// What a replica must serve: the context (`--context`; without it, the longest that fits, and at least
/// `minimumContext` or the model's whole context if shorter), sequences at once, and the KV cache's element type.
public struct ServingRequest: Hashable, Sendable, Codable {
    public static let minimumContext: Int64 = 4096

    public var context: Int64?
    public var concurrency: Int64
    public var kvCacheDtype: KVCacheDtype

    public init(context: Int64? = nil, concurrency: Int64 = 1, kvCacheDtype: KVCacheDtype = .auto)
        throws(RegistryError)
    {
        if let context, context < 1 { throw RegistryError(.invalidRequest, "--context must be positive") }
        guard concurrency >= 1 else { throw RegistryError(.invalidRequest, "--concurrency must be positive") }
        // vLLM caches in the model's dtype or in fp8; it has no flag for another 16- or 32-bit type.
        guard kvCacheDtype == .auto || kvCacheDtype == .fp8 else {
            throw RegistryError(
                .invalidRequest,
                "vLLM's --kv-cache-dtype takes auto (the model's dtype) or fp8, not \(kvCacheDtype.rawValue)")
        }
        self.context = context
        self.concurrency = concurrency
        self.kvCacheDtype = kvCacheDtype
    }
}

/// How one variant fares: the size and context it is served at, or why it cannot be.
public struct VariantConsideration: Hashable, Sendable, Codable {
    public var variant: VariantName
    public var weightBytes: Int64?
    /// The smallest size within the budget that fits, with the context it leaves room for.
    public var fit: ShardedEstimate?
    public var maxContext: Int64?
    /// Why it does not fit, when it does not.
    public var problem: String?
}

/// A replica's serving plan: the variant, the tensor-parallel size and the context, and vLLM's arguments for
/// them, each with why.
public struct ServingPlan: Hashable, Sendable, Codable {
    public struct Choice: Hashable, Sendable, Codable {
        public var flag: String
        public var value: String?
        public var why: String
    }

    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var budget: GPUBudget
    public var request: ServingRequest
    public var estimate: ShardedEstimate
    public var maxModelLen: Int64
    public var choices: [Choice]
    /// Every variant of the release, highest precision first.
    public var considered: [VariantConsideration]
    /// The chosen variant's serving profile, whose arguments are among `choices`.
    public var profile: ServingProfile?

    public var tensorParallelSize: Int { estimate.tensorParallelSize }

    /// vLLM's arguments, in order: `vllm serve` takes them as they are.
    public var vllmArguments: [String] { choices.flatMap { [$0.flag] + ($0.value.map { [$0] } ?? []) } }

    /// The plan with the variant's serving profile: its arguments after the planned ones (a flag and the value
    /// after it, or `--flag=value`, are one choice), its environment and warm-up kept for the pod.
    public func including(_ profile: ServingProfile) -> ServingPlan {
        var plan = self
        let why = "the variant's serving profile (\(ServingProfile.fileName))"
        var added: [Choice] = []
        for word in profile.arguments {
            if word.hasPrefix("-") {
                let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                added.append(Choice(flag: parts[0], value: parts.count == 2 ? parts[1] : nil, why: why))
            } else if let last = added.last, last.value == nil {
                added[added.count - 1].value = word
            } else {
                added.append(Choice(flag: word, value: nil, why: why))
            }
        }
        plan.choices += added
        plan.profile = profile
        return plan
    }
}

/// Chooses, as `--fit` does, the highest-precision variant that fits, then the smallest tensor-parallel size it
/// fits at and the longest context that size leaves room for.
public enum ServingPlanner {
    /// Where `modelreg fetch --dest` places the files in the pods this plans for.
    public static let modelDirectory = "/models"

    public static func plan(
        model: ModelName, version: VersionName, candidates: [(VariantName, Manifest)], budget: GPUBudget,
        request: ServingRequest
    ) throws(RegistryError) -> ServingPlan {
        let ordered = candidates.sorted {
            VariantFit.inPrecisionOrder(($0.0, $0.1.metadata?.weightBytes), ($1.0, $1.1.metadata?.weightBytes))
        }
        let considered = ordered.map { consider($0.0, $0.1, budget: budget, request: request) }
        guard let index = considered.firstIndex(where: { $0.fit != nil }),
            let estimate = considered[index].fit, let maxContext = considered[index].maxContext,
            let metadata = ordered[index].1.metadata
        else {
            let reasons = considered.map { "\($0.variant): \($0.problem ?? "no plan")" }.joined(separator: "; ")
            throw RegistryError(
                .notFound,
                "no variant of \(model):\(version) can be served on \(budget.maxGPUs) × \(ByteCount.format(budget.memoryBytes)) GPUs: \(reasons)"
            )
        }
        let manifest = ordered[index].1
        let modelContext = metadata.contextLength
        let maxModelLen = request.context ?? maxContext
        var choices: [ServingPlan.Choice] = [
            modelChoice(manifest),
            ServingPlan.Choice(
                flag: "--served-model-name", value: model.value, why: "clients ask for the model by its registry name"),
            ServingPlan.Choice(
                flag: "--tensor-parallel-size", value: String(estimate.tensorParallelSize),
                why: tensorParallelWhy(estimate, metadata: metadata, budget: budget, request: request)),
            ServingPlan.Choice(
                flag: "--max-model-len", value: String(maxModelLen),
                why: request.context != nil
                    ? "as asked (--context); \(grouped(estimate.cacheTokens)) tokens of cache fit at this size"
                    : contextWhy(estimate, maxContext: maxContext, modelContext: modelContext, request: request)),
            dtypeChoice(manifest, metadata),
            kvCacheChoice(metadata, request),
            ServingPlan.Choice(
                flag: "--gpu-memory-utilization", value: String(budget.utilization),
                why:
                    "vLLM takes \(ByteCount.format(budget.usableBytes)) of each \(ByteCount.format(budget.memoryBytes)) GPU for weights, activations and the KV cache"
            ),
        ]
        if manifest.quantization?.method == "bitsandbytes" {
            // vLLM reads AWQ, GPTQ, FP8 and compressed-tensors from config.json and GGUF's from the file, but loads
            // a bitsandbytes checkpoint only when told.
            let why = "a bitsandbytes checkpoint: vLLM loads it only when told"
            choices.append(ServingPlan.Choice(flag: "--quantization", value: "bitsandbytes", why: why))
            choices.append(ServingPlan.Choice(flag: "--load-format", value: "bitsandbytes", why: why))
        }
        return ServingPlan(
            model: model, version: version, variant: ordered[index].0, budget: budget, request: request,
            estimate: estimate, maxModelLen: maxModelLen, choices: choices, considered: considered, profile: nil)
    }

    /// The smallest size within the budget that fits the variant, or why none does (and what would).
    static func consider(_ variant: VariantName, _ manifest: Manifest, budget: GPUBudget, request: ServingRequest)
        -> VariantConsideration
    {
        var consideration = VariantConsideration(variant: variant, weightBytes: manifest.metadata?.weightBytes)
        guard let metadata = manifest.metadata else {
            consideration.problem = "pushed without inspection: nothing to plan from"
            return consideration
        }
        guard metadata.kvCacheBytesPerToken != nil else {
            consideration.problem = "its files do not give the layers, KV heads and head dim the KV cache is sized by"
            return consideration
        }
        let modelContext = metadata.contextLength
        if let asked = request.context, let modelContext, asked > modelContext {
            consideration.problem = "--context \(asked) is longer than the model's own \(modelContext)"
            return consideration
        }
        let needed =
            request.context ?? min(modelContext ?? ServingRequest.minimumContext, ServingRequest.minimumContext)
        func fitting(_ sizes: [Int]) -> (ShardedEstimate, Int64)? {
            for size in sizes {
                guard
                    let estimate = ShardedEstimate(
                        metadata: metadata, tensorParallelSize: size, budget: budget,
                        kvCacheDtype: request.kvCacheDtype)
                else { return nil }
                let context = min(estimate.cacheTokens / request.concurrency, modelContext ?? .max)
                if context >= needed { return (estimate, context) }
            }
            return nil
        }
        let allowed = ShardedEstimate.tensorParallelSizes(
            attentionHeads: metadata.attentionHeads, kvHeads: metadata.kvHeads, upTo: budget.maxGPUs)
        if let (estimate, context) = fitting(allowed) {
            consideration.fit = estimate
            let rounded = context / 256 * 256
            consideration.maxContext = context == modelContext || rounded < needed ? context : rounded
            return consideration
        }
        let largest = allowed.last ?? 1
        let atLargest = ShardedEstimate(
            metadata: metadata, tensorParallelSize: largest, budget: budget, kvCacheDtype: request.kvCacheDtype)
        let room = atLargest.map { grouped($0.cacheTokens / request.concurrency) } ?? "no"
        var problem =
            "at \(largest) GPU\(largest == 1 ? "" : "s") it leaves room for \(room) tokens a sequence, not the \(needed) needed"
        let beyond = ShardedEstimate.tensorParallelSizes(
            attentionHeads: metadata.attentionHeads, kvHeads: metadata.kvHeads,
            upTo: Int(min(metadata.attentionHeads ?? 1, 1024))
        ).filter { $0 > budget.maxGPUs }
        if let (estimate, _) = fitting(beyond) {
            problem += "; it fits at --gpus \(estimate.tensorParallelSize)"
        } else if request.concurrency > 1 || request.context != nil {
            problem += "; ask for fewer sequences or a shorter --context, or use larger GPUs"
        } else {
            problem += "; use larger GPUs"
        }
        consideration.problem = problem
        return consideration
    }

    /// `86,402,595`: token counts read at a glance, the same in every locale.
    public static func grouped(_ number: Int64) -> String {
        let digits = Array(String(number.magnitude))
        let groups = stride(from: digits.count, to: 0, by: -3).reversed().map {
            String(digits[max($0 - 3, 0)..<$0])
        }
        return (number < 0 ? "-" : "") + groups.joined(separator: ",")
    }

    private static func modelChoice(_ manifest: Manifest) -> ServingPlan.Choice {
        let weights = manifest.metadata?.weightFiles ?? [:]
        if weights.count == 1, let (path, container) = weights.first, container == "gguf" {
            return ServingPlan.Choice(
                flag: "--model", value: "\(modelDirectory)/\(path)",
                why:
                    "vLLM loads a GGUF model from the file itself, which `modelreg fetch --dest \(modelDirectory)` places there"
            )
        }
        return ServingPlan.Choice(
            flag: "--model", value: modelDirectory,
            why: "where `modelreg fetch --dest \(modelDirectory)` places the files (config.json, tokenizer, weights)")
    }

    private static func tensorParallelWhy(
        _ estimate: ShardedEstimate, metadata: ModelMetadata, budget: GPUBudget, request: ServingRequest
    ) -> String {
        let per =
            "\(ByteCount.format(estimate.weightBytes)) of weights and \(ByteCount.format(estimate.overheadBytes)) of overhead a GPU leave room for \(grouped(estimate.cacheTokens)) tokens of KV cache"
        guard estimate.tensorParallelSize > 1 else { return "one GPU is enough: \(per)" }
        let heads = metadata.attentionHeads.map { "\($0) attention heads" } ?? "the attention heads"
        let kvHeads = metadata.kvHeads.map { " and \($0) KV heads" } ?? ""
        return
            "the smallest size that fits (fewer GPUs leave too little room for the KV cache): \(per); \(estimate.tensorParallelSize) suits the \(heads)\(kvHeads)"
    }

    private static func contextWhy(
        _ estimate: ShardedEstimate, maxContext: Int64, modelContext: Int64?, request: ServingRequest
    ) -> String {
        let sequences = request.concurrency == 1 ? "one sequence" : "each of \(request.concurrency) sequences"
        if let modelContext, maxContext == modelContext {
            return
                "the model's whole context: \(grouped(estimate.cacheTokens)) tokens of cache hold it for \(sequences)"
        }
        return
            "the longest context that fits: \(grouped(estimate.cacheTokens)) tokens of cache for \(sequences), rounded down to 256; the model's own is \(modelContext.map(String.init) ?? "not given")"
    }

    private static func dtypeChoice(_ manifest: Manifest, _ metadata: ModelMetadata) -> ServingPlan.Choice {
        if let method = manifest.quantization?.method, ["awq", "gptq"].contains(method) {
            return ServingPlan.Choice(
                flag: "--dtype", value: "float16", why: "vLLM's \(method.uppercased()) kernels compute in float16")
        }
        if let dtype = metadata.torchDtype, ["bfloat16", "float16", "float32"].contains(dtype) {
            return ServingPlan.Choice(flag: "--dtype", value: dtype, why: "config.json's torch_dtype")
        }
        return ServingPlan.Choice(flag: "--dtype", value: "auto", why: "the files name no torch_dtype: vLLM decides")
    }

    private static func kvCacheChoice(_ metadata: ModelMetadata, _ request: ServingRequest) -> ServingPlan.Choice {
        if request.kvCacheDtype == .fp8 {
            return ServingPlan.Choice(
                flag: "--kv-cache-dtype", value: "fp8", why: "as asked: one byte an element, half the model's cache")
        }
        let bytes = ModelMetadata.cacheElementBytes(torchDtype: metadata.torchDtype)
        return ServingPlan.Choice(
            flag: "--kv-cache-dtype", value: "auto", why: "the model's own dtype, \(bytes) bytes an element")
    }
}
