import ModelRegistryCore

/// What a Hugging Face `config.json` says about a model's shape and quantization.
public struct ModelConfig: Hashable, Sendable {
    public static let maxSize: Int64 = 16 << 20

    public var architecture: String?
    public var hiddenSize: Int64?
    public var layers: Int64?
    public var attentionHeads: Int64?
    public var kvHeads: Int64?
    public var headDim: Int64?
    public var maxPositionEmbeddings: Int64?
    public var torchDtype: String?
    public var quantization: Quantization?

    public static func parse(_ source: any ByteSource, path: String) throws(RegistryError) -> ModelConfig {
        let file = ModelFile(path: path, source: source)
        guard file.size <= maxSize else {
            throw file.problem("it is \(file.size) bytes, over the \(maxSize)-byte limit for a config")
        }
        guard let json = JSONValue.parse(try file.bytes(at: 0, count: Int(file.size), what: "the config")),
            json.object != nil
        else {
            throw file.problem("it is not a JSON object")
        }
        // Multimodal models keep the language model's shape in `text_config`.
        let text = json["text_config"]?.object != nil ? json["text_config"]! : json
        func integer(_ keys: String...) -> Int64? {
            for key in keys {
                if let value = text[key]?.integer ?? json[key]?.integer, value > 0 { return value }
            }
            return nil
        }
        var config = ModelConfig()
        config.architecture = json["architectures"]?.array?.first?.string ?? json["model_type"]?.string
        config.hiddenSize = integer("hidden_size", "n_embd", "d_model")
        config.layers = integer("num_hidden_layers", "n_layer", "num_layers")
        config.attentionHeads = integer("num_attention_heads", "n_head")
        config.kvHeads =
            integer("num_key_value_heads", "num_kv_heads", "multi_query_group_num") ?? config.attentionHeads
        config.headDim =
            integer("head_dim")
            ?? config.hiddenSize.flatMap { hidden in
                config.attentionHeads.map { hidden / $0 }
            }
        config.maxPositionEmbeddings = integer(
            "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
        config.torchDtype = json["torch_dtype"]?.string ?? json["dtype"]?.string ?? text["torch_dtype"]?.string
        if let quantization = json["quantization_config"] {
            config.quantization = try Self.quantization(quantization, file)
        }
        return config
    }

    /// awq, gptq, bitsandbytes, fp8, compressed-tensors, and any other method by its name and `bits`.
    static func quantization(_ json: JSONValue, _ file: ModelFile) throws(RegistryError) -> Quantization {
        guard json.object != nil else { throw file.problem("quantization_config is not an object") }
        let method: String
        if let declared = json["quant_method"]?.string {
            method = declared.lowercased()
        } else if json["load_in_4bit"]?.bool == true || json["load_in_8bit"]?.bool == true {
            method = "bitsandbytes"
        } else {
            throw file.problem("quantization_config has no quant_method")
        }
        var bits = (json["bits"] ?? json["w_bit"] ?? json["num_bits"])?.integer
        var groupSize = (json["group_size"] ?? json["q_group_size"])?.integer
        switch method {
        case "bitsandbytes":
            bits = json["load_in_4bit"]?.bool == true ? 4 : json["load_in_8bit"]?.bool == true ? 8 : bits
        case "fp8":
            bits = 8
        case "compressed-tensors":
            // The first quantization group's weight scheme, in key order so the choice is stable.
            if let groups = json["config_groups"]?.object, let first = groups.keys.sorted().first,
                let weights = groups[first]?["weights"]
            {
                bits = weights["num_bits"]?.integer
                groupSize = weights["group_size"]?.integer
            }
        default:
            break
        }
        if let value = bits, value < 1 || value > 64 { throw file.problem("quantization_config has \(value) bits") }
        // gptq writes -1 for "no grouping" (one scale a column).
        if let value = groupSize, value <= 0 { groupSize = nil }
        return Quantization(method: method, bits: bits.map(Int.init), groupSize: groupSize.map(Int.init))
    }
}
