import ModelFormats
import ModelRegistryCore

/// The GPUs a replica is planned for: each GPU's memory, how many one replica may take, and the share of each
/// that vLLM may use (its `--gpu-memory-utilization`).
public struct GPUBudget: Hashable, Sendable, Codable {
    public static let defaultUtilization = 0.9
    /// One node's worth: tensor parallelism across nodes is not what these plans are for.
    public static let defaultMaxGPUs = 8

    public var memoryBytes: Int64
    public var maxGPUs: Int
    public var utilization: Double

    public init(memoryBytes: Int64, maxGPUs: Int = defaultMaxGPUs, utilization: Double = defaultUtilization)
        throws(RegistryError)
    {
        guard memoryBytes > 0 else { throw RegistryError(.invalidRequest, "--gpu-memory must be positive") }
        guard (1...1024).contains(maxGPUs) else {
            throw RegistryError(.invalidRequest, "--gpus must be from 1 to 1024, not \(maxGPUs)")
        }
        guard utilization > 0, utilization <= 1 else {
            throw RegistryError(
                .invalidRequest, "--gpu-memory-utilization must be above 0 and at most 1 (0.9 is vLLM's default)")
        }
        self.memoryBytes = memoryBytes
        self.maxGPUs = maxGPUs
        self.utilization = utilization
    }

    /// What vLLM may take of each GPU.
    public var usableBytes: Int64 { Int64((Double(memoryBytes) * utilization).rounded(.down)) }
}

/// A variant's memory on each GPU when vLLM shards it over `tensorParallelSize` GPUs: `MemoryEstimate` (what
/// `--fit` uses) split per GPU.
///
///     weights  = weight bytes / tp
///     overhead = 1 GiB + weights / 20
///     KV cache per token = 2 × layers × KV heads per GPU × head dim × cache element bytes
///     KV heads per GPU = KV heads / tp, or 1 when tp is a multiple of the KV heads (vLLM replicates them)
///     cache tokens = (usable − weights − overhead) / KV cache per token
public struct ShardedEstimate: Hashable, Sendable, Codable {
    public var tensorParallelSize: Int
    public var weightBytes: Int64
    public var overheadBytes: Int64
    public var kvCacheBytesPerToken: Int64
    public var usableBytes: Int64
    /// Tokens of KV cache that fit beside the weights and the overhead, shared by all sequences; 0 when the
    /// weights and overhead alone do not fit.
    public var cacheTokens: Int64

    /// Nil when the metadata does not say enough (layers, KV heads, head dim) to size the cache.
    public init?(metadata: ModelMetadata, tensorParallelSize: Int, budget: GPUBudget, kvCacheDtype: KVCacheDtype) {
        guard let perToken = metadata.kvCacheBytesPerToken, perToken > 0 else { return nil }
        let tp = Int64(tensorParallelSize)
        let kvHeads = max(metadata.kvHeads ?? 1, 1)
        let ownElement = ModelMetadata.cacheElementBytes(torchDtype: metadata.torchDtype)
        let element = kvCacheDtype.elementBytes ?? ownElement
        let headsPerGPU = max(kvHeads / tp, 1)
        self.tensorParallelSize = tensorParallelSize
        weightBytes = (metadata.weightBytes + tp - 1) / tp
        overheadBytes = MemoryEstimate.fixedOverhead + weightBytes / 20
        kvCacheBytesPerToken = max(perToken / ownElement * element / kvHeads * headsPerGPU, 1)
        usableBytes = budget.usableBytes
        let room = usableBytes - weightBytes - overheadBytes
        cacheTokens = room > 0 ? room / kvCacheBytesPerToken : 0
    }

    /// The tensor-parallel sizes vLLM accepts for the model, up to `limit`: each divides the attention heads, and
    /// divides the KV heads or is a multiple of them. Only 1 when the heads are unknown.
    public static func tensorParallelSizes(attentionHeads: Int64?, kvHeads: Int64?, upTo limit: Int) -> [Int] {
        guard let heads = attentionHeads, heads > 0 else { return [1] }
        let kv = max(kvHeads ?? heads, 1)
        return (1...max(limit, 1)).filter { size in
            let tp = Int64(size)
            return heads % tp == 0 && (kv % tp == 0 || tp % kv == 0)
        }
    }
}
