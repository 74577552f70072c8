import ArgumentParser
import ModelFormats
import ModelRegistryCore
import RegistryClient

/// `push` options about what the files are: inspection, and the quantization the variant declares.
struct InspectionOptions: ParsableArguments {
    @Flag(name: .customLong("no-inspect"), help: "Push the files as opaque: read no headers, send no model metadata.")
    var noInspect = false

    @Option(
        help:
            "Quantization method the variant declares (awq, gptq, bitsandbytes, fp8, q4_k_m, ...); checked against the files."
    )
    var quantization: String?

    @Option(help: "Bits a quantized weight (with --quantization).")
    var bits: Int?

    @Option(help: "Quantization group size (with --quantization).")
    var groupSize: Int?

    @Option(help: "The variant this one was quantized from (fp16, ...).")
    var derivedFrom: String?

    func validate() throws {
        if quantization == nil, bits != nil || groupSize != nil {
            throw ValidationError("--bits and --group-size describe a --quantization METHOD")
        }
        if let bits, !(1...64).contains(bits) { throw ValidationError("--bits must be between 1 and 64") }
        if let groupSize, groupSize < 1 { throw ValidationError("--group-size must be positive") }
    }

    var declared: Quantization? {
        quantization.map { Quantization(method: $0.lowercased(), bits: bits, groupSize: groupSize) }
    }

    func derivedFromVariant() throws(RegistryError) -> VariantName? {
        try derivedFrom.map { text throws(RegistryError) in try VariantName(text) }
    }
}

/// The context and concurrency a memory estimate is made for.
struct EstimateOptions: ParsableArguments {
    @Option(help: "Context length for the estimate (default: the model's own).")
    var context: Int64?

    @Option(help: "Sequences served at once, for the estimate.")
    var concurrency: Int64 = 1

    @Option(
        help:
            "KV-cache element type, as the runtime is told (vLLM's --kv-cache-dtype): auto (the model's), fp32, fp16, bf16, fp8."
    )
    var kvCacheDtype: String = KVCacheDtype.auto.rawValue

    var cacheDtype: KVCacheDtype { KVCacheDtype(rawValue: kvCacheDtype) ?? .auto }

    func validate() throws {
        if let context, context < 1 { throw ValidationError("--context must be positive") }
        if concurrency < 1 { throw ValidationError("--concurrency must be positive") }
        if KVCacheDtype(rawValue: kvCacheDtype) == nil {
            throw ValidationError(
                "--kv-cache-dtype must be one of \(KVCacheDtype.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }
}

/// `pull --fit` and `fetch --fit`: choose the variant by the GPU memory it needs.
struct FitOptions: ParsableArguments {
    @Option(help: "GPU memory to fit (24GiB, 80G, 16GB): take the highest-precision variant whose estimate fits.")
    var fit: String?

    @OptionGroup var estimate: EstimateOptions

    /// The release and variant to transfer. An explicit variant always wins over --fit.
    func choose(_ reference: String, variant: String?, connection: RegistryConnection) async throws -> (
        ModelReference, VariantName?
    ) {
        let release = try ModelReference.release(reference)
        let named = try variant.map { text throws(RegistryError) in try VariantName(text) }
        guard let budget = fit, named == nil else { return (release, named) }
        let decision = try await connection.fittingVariant(
            release, budget: try ByteCount.parse(budget), contextLength: estimate.context,
            concurrency: estimate.concurrency,
            kvCacheDtype: estimate.cacheDtype
        )
        // Said even with --json: the choice is part of what happened.
        OutputOptions.warn(Presentation.fit(decision))
        // The version the alias pointed at when the choice was made; a digest stays pinned.
        if case .alias = release.target {
            return (ModelReference(name: decision.model, target: .version(decision.version)), decision.chosen)
        }
        return (release, decision.chosen)
    }
}
