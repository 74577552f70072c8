import ModelRegistryCore

/// How a weight file stores its tensors.
public enum WeightContainer: String, Sendable, Codable {
    case safetensors
    case gguf
    /// `torch.save` since PyTorch 1.6: a zip archive. Recognised by its magic, never unpickled.
    case pytorchZip = "pytorch-zip"
    /// The legacy `torch.save` format: a bare pickle stream.
    case pytorchPickle = "pytorch-pickle"
}

/// Everything read from one variant's files.
public struct Inspection: Sendable {
    public var metadata: ModelMetadata?
    /// The quantization the files themselves declare: config.json `quantization_config`, or the GGUF file type.
    public var quantization: Quantization?
    public var config: ModelConfig?
    public var safetensors: [String: SafetensorsHeader] = [:]
    public var gguf: [String: GGUFHeader] = [:]
    public var containers: [String: WeightContainer] = [:]
    /// `modelreg-serving.json`, when the variant carries one.
    public var servingProfile: ServingProfile?
}

/// Reads the headers of a variant's files (never the weights) and derives its metadata.
public enum ModelInspector {
    static let maxIndexSize: Int64 = 64 << 20
    static let fullPrecisionDtypes: Set<String> = ["F16", "BF16", "F32", "F64"]

    public static func inspect(
        paths: [ManifestPath], open: (ManifestPath) throws(RegistryError) -> any ByteSource
    ) throws(RegistryError) -> Inspection {
        var inspection = Inspection()
        var indexes: [ManifestPath] = []
        for path in paths {
            let name = path.value.lowercased()
            if name == "config.json" {
                inspection.config = try ModelConfig.parse(try open(path), path: path.value)
            } else if path.value == ServingProfile.fileName {
                inspection.servingProfile = try ServingProfile.parse(try open(path), path: path.value)
            } else if name.hasSuffix(".safetensors.index.json") || name.hasSuffix(".bin.index.json") {
                indexes.append(path)
            } else if name.hasSuffix(".safetensors") {
                inspection.safetensors[path.value] = try SafetensorsHeader.parse(try open(path), path: path.value)
                inspection.containers[path.value] = .safetensors
            } else if name.hasSuffix(".gguf") {
                inspection.gguf[path.value] = try GGUFHeader.parse(try open(path), path: path.value)
                inspection.containers[path.value] = .gguf
            } else if name.hasSuffix(".bin") || name.hasSuffix(".pt") || name.hasSuffix(".pth") {
                if let container = try pytorchContainer(try open(path)) {
                    inspection.containers[path.value] = container
                }
            }
        }
        var counted = Set(inspection.containers.keys)
        for index in indexes {
            let shards = try checkIndex(index, try open(index), paths: Set(paths.map(\.value)), inspection: inspection)
            // A sharded checkpoint is the model; other weight files beside it (a consolidated copy) are not counted twice.
            if index.value.hasSuffix(".safetensors.index.json") {
                counted = counted.subtracting(inspection.safetensors.keys).union(shards)
            }
        }
        inspection.quantization = try filesQuantization(inspection)
        inspection.metadata = try metadata(
            inspection, counted: counted, sizes: { path throws(RegistryError) in try open(path).size })
        return inspection
    }

    /// A zip archive or a pickle stream, by magic number; nil for anything else (then it is not a checkpoint).
    static func pytorchContainer(_ source: any ByteSource) throws(RegistryError) -> WeightContainer? {
        let head = try source.read(at: 0, length: 4)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
            return .pytorchZip
        }
        if head.count >= 2, head[0] == 0x80, (2...5).contains(head[1]) { return .pytorchPickle }
        return nil
    }

    /// A sharded checkpoint's index: every shard it names is present and every tensor is mapped exactly
    /// once, to the shard that holds it. Returns the shards' paths.
    static func checkIndex(
        _ path: ManifestPath, _ source: any ByteSource, paths: Set<String>, inspection: Inspection
    ) throws(RegistryError) -> Set<String> {
        let file = ModelFile(path: path.value, source: source)
        guard file.size <= maxIndexSize else {
            throw file.problem("it is \(file.size) bytes, over the \(maxIndexSize)-byte limit for an index")
        }
        guard let json = JSONValue.parse(try file.bytes(at: 0, count: Int(file.size), what: "the index")),
            let weightMap = json["weight_map"]?.object
        else {
            throw file.problem("it has no weight_map object")
        }
        let directory = path.components.dropLast().joined(separator: "/")
        var mapped: [String: String] = [:]
        for (tensor, shard) in weightMap {
            guard let shardName = shard.string else {
                throw file.problem("weight_map entry '\(tensor)' is not a file name")
            }
            mapped[tensor] = directory.isEmpty ? shardName : "\(directory)/\(shardName)"
        }
        let shards = Set(mapped.values)
        for shard in shards.sorted() where !paths.contains(shard) {
            throw file.problem("it names shard \(shard), which is not among the files")
        }
        guard path.value.hasSuffix(".safetensors.index.json") else { return shards }
        for shard in shards.sorted() {
            guard let header = inspection.safetensors[shard] else {
                throw file.problem("shard \(shard) is not a safetensors file")
            }
            for tensor in header.tensors where mapped[tensor.name] != shard {
                let elsewhere = mapped[tensor.name].map { "maps it to \($0)" } ?? "does not map it"
                throw file.problem("shard \(shard) holds tensor '\(tensor.name)' but the index \(elsewhere)")
            }
        }
        for (tensor, shard) in mapped.sorted(by: { $0.key < $1.key })
        where inspection.safetensors[shard]?.tensors.contains(where: { $0.name == tensor }) != true {
            throw file.problem("it maps tensor '\(tensor)' to \(shard), which does not hold it")
        }
        return shards
    }

    /// What the files declare about their own quantization; a config that claims quantized weights while
    /// every tensor is a full-precision float is refused.
    static func filesQuantization(_ inspection: Inspection) throws(RegistryError) -> Quantization? {
        if let declared = inspection.config?.quantization {
            if let bits = declared.bits, bits < 16, let dtypes = onlyFullPrecision(inspection) {
                throw RegistryError(
                    .invalidModelFile,
                    "invalid model file config.json: quantization_config declares \(describe(declared)) but the weights hold only \(dtypes) tensors"
                )
            }
            return declared
        }
        var quantizedBytes: [String: Int64] = [:]
        for header in inspection.gguf.values {
            if let fileType = header.metadata["general.file_type"]?.integer, let name = GGMLType.fileTypes[fileType] {
                if let bits = GGMLType.nominalBits(of: name) {
                    return Quantization(method: name.lowercased(), bits: bits)
                }
                continue
            }
            for tensor in header.tensors where tensor.type.quantizedBits != nil {
                quantizedBytes[tensor.type.name, default: 0] += tensor.byteCount
            }
        }
        // No file type: the quantized type holding the most bytes names it.
        guard let dominant = quantizedBytes.max(by: { ($0.value, $1.key) < ($1.value, $0.key) })?.key else {
            return nil
        }
        return Quantization(method: dominant.lowercased(), bits: GGMLType.nominalBits(of: dominant))
    }

    /// The dtypes of the tensors, joined, when every one is a 16-bit or wider float; nil otherwise or without tensors.
    static func onlyFullPrecision(_ inspection: Inspection) -> String? {
        let dtypes = Set(
            inspection.safetensors.values.flatMap { $0.tensors.map(\.dtype) }
                + inspection.gguf.values.flatMap { $0.tensors.map(\.type.name) })
        guard !dtypes.isEmpty, dtypes.isSubset(of: fullPrecisionDtypes) else { return nil }
        return dtypes.sorted().joined(separator: ", ")
    }

    static func describe(_ quantization: Quantization) -> String {
        var text = quantization.method
        if let bits = quantization.bits { text += " \(bits)-bit" }
        if let groupSize = quantization.groupSize { text += " (group size \(groupSize))" }
        return text
    }

    static func metadata(
        _ inspection: Inspection, counted: Set<String>, sizes: (ManifestPath) throws(RegistryError) -> Int64
    ) throws(RegistryError) -> ModelMetadata? {
        guard !inspection.containers.isEmpty || inspection.config != nil else { return nil }
        var parameters: Int64 = 0
        var dtypeBytes: [String: Int64] = [:]
        for (path, header) in inspection.safetensors where counted.contains(path) {
            for tensor in header.tensors {
                parameters += TensorCounting.parameters(
                    name: tensor.name, dtype: tensor.dtype, elements: tensor.elementCount,
                    quantization: inspection.config?.quantization
                )
                dtypeBytes[tensor.dtype, default: 0] += tensor.byteCount
            }
        }
        for header in inspection.gguf.values {
            for tensor in header.tensors {
                parameters += tensor.elementCount
                dtypeBytes[tensor.type.name, default: 0] += tensor.byteCount
            }
        }
        var weightBytes = dtypeBytes.values.reduce(0, +)
        let pytorchFiles = inspection.containers.filter { $0.value == .pytorchZip || $0.value == .pytorchPickle }.keys
            .sorted()
        let hasTensorHeaders = !inspection.safetensors.isEmpty || !inspection.gguf.isEmpty
        // Pickled checkpoints cannot be read safely, so their tensors are unknown: count their file size as
        // weight bytes, and only when no safetensors or GGUF copy of the weights is there.
        if !hasTensorHeaders {
            for path in pytorchFiles { weightBytes += try sizes(try ManifestPath(path)) }
        }
        let config = inspection.config
        let largestGGUF = inspection.gguf.sorted { ($0.value.tensors.count, $1.key) > ($1.value.tensors.count, $0.key) }
            .first
        let gguf = largestGGUF?.value
        let layers = config?.layers ?? gguf?.architectureValue("block_count")
        let attentionHeads = config?.attentionHeads ?? gguf?.architectureValue("attention.head_count")
        let hiddenSize = config?.hiddenSize ?? gguf?.architectureValue("embedding_length")
        let kvHeads = config?.kvHeads ?? gguf?.architectureValue("attention.head_count_kv") ?? attentionHeads
        let headDim =
            config?.headDim ?? gguf?.architectureValue("attention.key_length")
            ?? hiddenSize.flatMap { hidden in
                attentionHeads.map { hidden / $0 }
            }
        let cacheElementBytes = ModelMetadata.cacheElementBytes(torchDtype: config?.torchDtype)
        var kvCacheBytesPerToken: Int64?
        if let layers, let kvHeads, let headDim {
            // The counts come from the files, so a forged one must be refused rather than overflow.
            guard let perToken = MemoryEstimate.checkedProduct(2, layers, kvHeads, headDim, cacheElementBytes) else {
                let source = config != nil ? "config.json" : largestGGUF?.key ?? "config.json"
                throw RegistryError(
                    .invalidModelFile,
                    "invalid model file \(source): \(layers) layers × \(kvHeads) KV heads × \(headDim) head dim is an absurd KV-cache size"
                )
            }
            kvCacheBytesPerToken = perToken
        }
        return ModelMetadata(
            architecture: config?.architecture ?? gguf?.architecture,
            parameterCount: hasTensorHeaders ? parameters : nil,
            dtypeBytes: dtypeBytes,
            weightBytes: weightBytes,
            torchDtype: config?.torchDtype,
            contextLength: config?.maxPositionEmbeddings ?? gguf?.architectureValue("context_length"),
            layers: layers, hiddenSize: hiddenSize, attentionHeads: attentionHeads, kvHeads: kvHeads, headDim: headDim,
            kvCacheBytesPerToken: kvCacheBytesPerToken,
            weightFiles: inspection.containers.mapValues(\.rawValue)
        )
    }
}

/// Parameters a stored tensor stands for.
enum TensorCounting {
    /// Scales, zero points, group indices and the like: quantization state, not parameters.
    static let stateSuffixes = [
        ".qzeros", ".scales", ".g_idx", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".SCB",
        ".weight_format", ".weight_scale", ".weight_scale_inv", ".input_scale", ".weight_zero_point", ".weight_shape",
        ".weight_global_scale", ".input_global_scale", ".k_scale", ".v_scale",
    ]
    static let storageBits: [String: Int64] = ["I32": 32, "U32": 32, "I64": 64, "U8": 8, "I8": 8, "I16": 16]

    static func parameters(name: String, dtype: String, elements: Int64, quantization: Quantization?) -> Int64 {
        guard let quantization else { return elements }
        if stateSuffixes.contains(where: name.hasSuffix) || name.contains(".quant_state.") { return 0 }
        guard let bits = quantization.bits, bits > 0, let storage = storageBits[dtype] else { return elements }
        // AWQ and GPTQ pack into `qweight`, compressed-tensors into `weight_packed`, bitsandbytes 4-bit into U8 `weight`.
        let packed =
            name.hasSuffix(".qweight") || name.hasSuffix(".weight_packed")
            || (quantization.method == "bitsandbytes" && bits == 4 && dtype == "U8" && name.hasSuffix(".weight"))
        return packed ? elements * storage / Int64(bits) : elements
    }
}
