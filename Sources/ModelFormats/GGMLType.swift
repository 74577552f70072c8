/// The tensor types of ggml, as numbered in GGUF files, with their block layout: `blockSize` elements are
/// stored in `typeSize` bytes. https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
public struct GGMLType: Hashable, Sendable {
    public let id: UInt32
    public let name: String
    public let blockSize: Int64
    public let typeSize: Int64

    /// Nominal bits of a quantized weight (4 for Q4_K), nil for float and integer types.
    public var quantizedBits: Int? {
        GGMLType.nominalBits(of: name)
    }

    public static let all: [UInt32: GGMLType] = {
        let table: [(UInt32, String, Int64, Int64)] = [
            (0, "F32", 1, 4), (1, "F16", 1, 2), (2, "Q4_0", 32, 18), (3, "Q4_1", 32, 20), (6, "Q5_0", 32, 22),
            (7, "Q5_1", 32, 24), (8, "Q8_0", 32, 34), (9, "Q8_1", 32, 40), (10, "Q2_K", 256, 84),
            (11, "Q3_K", 256, 110),
            (12, "Q4_K", 256, 144), (13, "Q5_K", 256, 176), (14, "Q6_K", 256, 210), (15, "Q8_K", 256, 292),
            (16, "IQ2_XXS", 256, 66), (17, "IQ2_XS", 256, 74), (18, "IQ3_XXS", 256, 98), (19, "IQ1_S", 256, 50),
            (20, "IQ4_NL", 32, 18), (21, "IQ3_S", 256, 110), (22, "IQ2_S", 256, 82), (23, "IQ4_XS", 256, 136),
            (24, "I8", 1, 1), (25, "I16", 1, 2), (26, "I32", 1, 4), (27, "I64", 1, 8), (28, "F64", 1, 8),
            (29, "IQ1_M", 256, 56), (30, "BF16", 1, 2), (34, "TQ1_0", 256, 54), (35, "TQ2_0", 256, 66),
            (39, "MXFP4", 32, 17),
        ]
        return Dictionary(
            uniqueKeysWithValues: table.map { ($0.0, GGMLType(id: $0.0, name: $0.1, blockSize: $0.2, typeSize: $0.3)) })
    }()

    /// `general.file_type` values (llama.cpp's `llama_ftype`): what most of a file's tensors are.
    public static let fileTypes: [Int64: String] = [
        0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
        12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
        19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
        26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
        37: "TQ2_0", 38: "MXFP4_MOE",
    ]

    /// The digit after the Q, IQ, TQ or MXFP prefix: Q4_K_M and IQ4_XS are 4-bit, TQ1_0 is 1-bit.
    static func nominalBits(of name: String) -> Int? {
        for prefix in ["MXFP", "IQ", "TQ", "Q"] where name.hasPrefix(prefix) {
            return name.dropFirst(prefix.count).first?.wholeNumberValue
        }
        return nil
    }
}
