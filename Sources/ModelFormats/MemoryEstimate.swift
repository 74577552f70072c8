import ModelRegistryCore

/// GPU memory needed to serve a variant:
///
///     total    = weights + kv_cache + overhead
///     kv_cache = kv_cache_bytes_per_token × context_length × concurrency
///     kv_cache_bytes_per_token = 2 (K and V) × layers × kv_heads × head_dim × cache element bytes
///     cache element bytes = the model's dtype (4 for float32, else 2), or the --kv-cache-dtype given
///     overhead = 1 GiB (CUDA context, allocator) + weights / 20 (activations, fragmentation)
///
/// A rule of thumb for picking a variant, not a guarantee: runtimes differ in what they reserve.
public struct MemoryEstimate: Hashable, Sendable, Codable {
    public static let fixedOverhead: Int64 = 1 << 30
    public static let defaultContextLength: Int64 = 4096

    public var contextLength: Int64
    public var concurrency: Int64
    public var kvCacheDtype: KVCacheDtype
    public var weightBytes: Int64
    /// Nil when the files do not say enough (layers, KV heads, head dim) to size the cache.
    public var kvCacheBytes: Int64?
    public var overheadBytes: Int64
    public var totalBytes: Int64

    /// `contextLength` defaults to the model's own, else 4096; every product saturates instead of overflowing.
    public init(
        metadata: ModelMetadata, contextLength: Int64? = nil, concurrency: Int64 = 1, kvCacheDtype: KVCacheDtype = .auto
    ) {
        let context = contextLength ?? metadata.contextLength ?? Self.defaultContextLength
        self.contextLength = context
        self.concurrency = concurrency
        self.kvCacheDtype = kvCacheDtype
        weightBytes = metadata.weightBytes
        kvCacheBytes = metadata.kvCacheBytesPerToken.map { perToken in
            let ownElement = ModelMetadata.cacheElementBytes(torchDtype: metadata.torchDtype)
            let element = kvCacheDtype.elementBytes ?? ownElement
            return Self.saturating(perToken / ownElement, element, context, concurrency)
        }
        // The metadata comes from a manifest, which a registry may serve with any numbers in it.
        overheadBytes = Self.saturatingSum(Self.fixedOverhead, metadata.weightBytes / 20)
        totalBytes = Self.saturatingSum(weightBytes, overheadBytes, kvCacheBytes ?? 0)
    }

    static func saturating(_ factors: Int64...) -> Int64 {
        factors.reduce(1) { product, factor in
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            return overflow ? .max : result
        }
    }

    /// Like `saturating`, an overflow gives `.max`: a variant whose numbers overflow never fits a budget.
    static func saturatingSum(_ terms: Int64...) -> Int64 {
        terms.reduce(0) { sum, term in
            let (result, overflow) = sum.addingReportingOverflow(term)
            return overflow ? .max : result
        }
    }

    /// The product, or nil when it overflows.
    static func checkedProduct(_ factors: Int64...) -> Int64? {
        var product: Int64 = 1
        for factor in factors {
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            product = result
        }
        return product
    }
}

/// The element type a runtime keeps its KV cache in: the model's own (`auto`), or one chosen for the
/// cache, as vLLM's `--kv-cache-dtype fp8` halves it.
public enum KVCacheDtype: String, Hashable, Sendable, Codable, CaseIterable {
    case auto, fp32, fp16, bf16, fp8

    /// Nil for `auto`: the model's dtype decides.
    public var elementBytes: Int64? {
        switch self {
        case .auto: nil
        case .fp32: 4
        case .fp16, .bf16: 2
        case .fp8: 1
        }
    }
}

/// Choosing the variant to pull for a GPU: the highest-precision one whose estimate fits.
public enum VariantFit {
    public struct Need: Hashable, Sendable, Codable {
        public var variant: VariantName
        /// Nil for a variant pushed without inspection: nothing to estimate from.
        public var estimate: MemoryEstimate?
        public var fits: Bool
    }

    /// Every candidate's need, highest precision first, and the first that fits (nil when none does).
    public static func choose(
        _ candidates: [(VariantName, Manifest)], budget: Int64, contextLength: Int64?, concurrency: Int64,
        kvCacheDtype: KVCacheDtype = .auto
    ) -> (chosen: VariantName?, needs: [Need]) {
        let needs = candidates.map { name, manifest in
            let estimate = manifest.metadata.map {
                MemoryEstimate(
                    metadata: $0, contextLength: contextLength, concurrency: concurrency, kvCacheDtype: kvCacheDtype)
            }
            return Need(variant: name, estimate: estimate, fits: estimate.map { $0.totalBytes <= budget } ?? false)
        }.sorted { inPrecisionOrder(($0.variant, $0.estimate?.weightBytes), ($1.variant, $1.estimate?.weightBytes)) }
        return (needs.first(where: \.fits)?.variant, needs)
    }

    /// Highest precision first: all variants of a version hold the same model, so more weight bytes means more
    /// precision; variants without metadata last, then by name.
    public static func inPrecisionOrder(
        _ left: (variant: VariantName, weightBytes: Int64?), _ right: (variant: VariantName, weightBytes: Int64?)
    ) -> Bool {
        let (leftBytes, rightBytes) = (left.weightBytes ?? -1, right.weightBytes ?? -1)
        return leftBytes != rightBytes ? leftBytes > rightBytes : left.variant.value < right.variant.value
    }
}
