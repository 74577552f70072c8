import Foundation

/// What inspecting a variant's files found: the model's shape, its parameters and the bytes its weights take.
///
/// Stored in the manifest, so every field is an integer or a string: the canonical JSON (and with it the
/// variant's digest) must come out the same on every machine.
public struct ModelMetadata: Hashable, Sendable, Codable {
    /// `LlamaForCausalLM` from config.json, or `llama` from a GGUF file.
    public var architecture: String?
    /// Logical parameters: packed quantized tensors count the weights they hold, and quantization state
    /// (scales, zero points, group indices) does not count. Unknown when the only weights are pickled.
    public var parameterCount: Int64?
    /// Bytes of tensor data for each dtype (`F16`, `BF16`, `I32`, `Q4_K`, …).
    public var dtypeBytes: [String: Int64]
    public var weightBytes: Int64
    /// config.json `torch_dtype`, when given.
    public var torchDtype: String?
    public var contextLength: Int64?
    public var layers: Int64?
    public var hiddenSize: Int64?
    public var attentionHeads: Int64?
    public var kvHeads: Int64?
    public var headDim: Int64?
    /// 2 × layers × KV heads × head dim × bytes of one cache element.
    public var kvCacheBytesPerToken: Int64?
    /// The container of each weight file, by path: `safetensors`, `gguf`, `pytorch-zip`, `pytorch-pickle`.
    public var weightFiles: [String: String]

    public init(
        architecture: String? = nil, parameterCount: Int64?, dtypeBytes: [String: Int64], weightBytes: Int64,
        torchDtype: String? = nil, contextLength: Int64? = nil, layers: Int64? = nil, hiddenSize: Int64? = nil,
        attentionHeads: Int64? = nil, kvHeads: Int64? = nil, headDim: Int64? = nil, kvCacheBytesPerToken: Int64? = nil,
        weightFiles: [String: String]
    ) {
        self.architecture = architecture
        self.parameterCount = parameterCount
        self.dtypeBytes = dtypeBytes
        self.weightBytes = weightBytes
        self.torchDtype = torchDtype
        self.contextLength = contextLength
        self.layers = layers
        self.hiddenSize = hiddenSize
        self.attentionHeads = attentionHeads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.kvCacheBytesPerToken = kvCacheBytesPerToken
        self.weightFiles = weightFiles
    }
}

extension ModelMetadata {
    /// The bytes of each dtype, largest first: `BF16 14.2 GiB, F32 1.0 MiB`, as `show` and the web pages print them.
    public var dtypeSummary: String {
        dtypeBytes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.key) \(ByteCount.format($0.value))" }.joined(separator: ", ")
    }

    /// Bytes a KV-cache element takes when the runtime caches in the model's dtype (vLLM's "auto"):
    /// float32 models cache 4 bytes, everything else 2 (llama.cpp caches F16).
    public static func cacheElementBytes(torchDtype: String?) -> Int64 {
        torchDtype == "float32" ? 4 : 2
    }
}

/// Parameter counts in the units model names use: 8.03B, 124M.
public enum ParameterCount {
    public static func format(_ count: Int64) -> String {
        switch count {
        case 1_000_000_000...: String(format: "%.2fB", Double(count) / 1e9)
        case 1_000_000...: String(format: "%.1fM", Double(count) / 1e6)
        case 1000...: String(format: "%.1fK", Double(count) / 1e3)
        default: String(count)
        }
    }
}

extension Quantization {
    /// `awq 4-bit g128 (from bf16)`, as `variants`, `show` and the web pages print it.
    public var summary: String {
        var text = method
        if let bits { text += " \(bits)-bit" }
        if let groupSize { text += " g\(groupSize)" }
        if let derivedFrom { text += " (from \(derivedFrom))" }
        return text
    }
}
