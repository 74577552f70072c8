import ModelRegistryCore

/// One tensor of a weight file: its dtype as the format names it, its shape, and where its bytes are.
public struct TensorInfo: Hashable, Sendable, Codable {
    public var name: String
    public var dtype: String
    public var shape: [Int64]
    /// Byte offsets of the tensor's data, from the start of the file's data section.
    public var begin: Int64
    public var end: Int64

    public var elementCount: Int64 { shape.reduce(1, *) }
    public var byteCount: Int64 { end - begin }
}

/// The header of a safetensors file: u64 little-endian header length, a JSON header, then the data.
/// https://github.com/huggingface/safetensors#format
public struct SafetensorsHeader: Sendable {
    /// The same limit the reference implementation applies, so a forged length cannot make us allocate.
    public static let maxHeaderLength: Int64 = 100_000_000

    public var headerLength: Int64
    public var tensors: [TensorInfo]
    public var metadata: [String: String]

    /// Bits of one element of each dtype the format defines.
    static let dtypeBits: [String: Int64] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "I64": 64, "U64": 64,
        "F64": 64, "C64": 64,
    ]

    public static func parse(_ source: any ByteSource, path: String) throws(RegistryError) -> SafetensorsHeader {
        let file = ModelFile(path: path, source: source)
        let lengthBytes = try file.bytes(at: 0, count: 8, what: "the 8-byte header length")
        let headerLength = Int64(bitPattern: lengthBytes.littleEndian(UInt64.self, at: 0))
        guard headerLength > 0, headerLength <= file.size - 8 else {
            throw file.problem(
                "header length \(UInt64(bitPattern: headerLength)) is past the end of the file (\(file.size) bytes)")
        }
        guard headerLength <= maxHeaderLength else {
            throw file.problem("header length \(headerLength) is over the \(maxHeaderLength)-byte limit")
        }
        let headerBytes = try file.bytes(at: 8, count: Int(headerLength), what: "the JSON header")
        guard headerBytes.first == UInt8(ascii: "{") else { throw file.problem("the header does not start with '{'") }
        var tensors: [TensorInfo] = []
        let metadata = try SafetensorsHeaderScanner.scan(headerBytes, file) { scanner throws(RegistryError) in
            try scanner.header { entry throws(RegistryError) in tensors.append(try tensor(entry, file)) }
        }
        tensors.sort { $0.name < $1.name }
        for (tensor, following) in zip(tensors, tensors.dropFirst()) where tensor.name == following.name {
            throw file.problem("tensor '\(tensor.name)' is listed twice")
        }
        // Tensors tile the data section exactly: no overlap, no hole, nothing past the end.
        let dataLength = file.size - 8 - headerLength
        var expected: Int64 = 0
        for tensor in tensors.sorted(by: { $0.begin != $1.begin ? $0.begin < $1.begin : $0.name < $1.name }) {
            guard tensor.begin == expected else {
                throw file.problem(
                    tensor.begin < expected
                        ? "tensor '\(tensor.name)' overlaps the tensor before it (offset \(tensor.begin) < \(expected))"
                        : "tensor '\(tensor.name)' starts at \(tensor.begin), leaving a gap after offset \(expected)")
            }
            guard tensor.end <= dataLength else {
                throw file.problem(
                    "tensor '\(tensor.name)' ends at data offset \(tensor.end), past the end of the file (\(dataLength) data bytes)"
                )
            }
            expected = tensor.end
        }
        guard expected == dataLength else {
            throw file.problem("the tensors cover \(expected) data bytes but the file holds \(dataLength)")
        }
        return SafetensorsHeader(headerLength: headerLength, tensors: tensors, metadata: metadata)
    }

    private static func tensor(_ entry: SafetensorsHeaderScanner.Entry, _ file: ModelFile) throws(RegistryError)
        -> TensorInfo
    {
        let name = entry.name
        guard let dtype = entry.dtype else { throw file.problem("tensor '\(name)' has no dtype") }
        guard let bits = dtypeBits[dtype] else {
            throw file.problem("tensor '\(name)' has unknown dtype '\(dtype.prefix(40))'")
        }
        guard let shape = entry.shape else { throw file.problem("tensor '\(name)' has no valid shape") }
        var elements: Int64 = 1
        for dimension in shape {
            guard dimension >= 0 else {
                throw file.problem("tensor '\(name)' has a shape entry that is not a non-negative integer")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw file.problem("tensor '\(name)' has an absurd shape \(shape)") }
            elements = product
        }
        guard let offsets = entry.offsets, offsets.count == 2, case (let begin, let end) = (offsets[0], offsets[1]),
            begin >= 0, end >= begin
        else {
            throw file.problem("tensor '\(name)' has invalid data_offsets")
        }
        let (totalBits, overflow) = elements.multipliedReportingOverflow(by: bits)
        guard !overflow, totalBits % 8 == 0, totalBits / 8 == end - begin else {
            throw file.problem(
                "tensor '\(name)' of dtype \(dtype) and shape \(shape) needs \(overflow ? "an absurd number of" : String(totalBits / 8)) bytes but its offsets span \(end - begin)"
            )
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }
}
