import ModelRegistryCore

/// A metadata value of a GGUF file. Arrays keep only their element type and count: tokenizer vocabularies
/// are large, and nothing derived from a file needs their elements.
public enum GGUFValue: Hashable, Sendable {
    case unsigned(UInt64)
    case signed(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array(elementType: UInt32, count: UInt64)

    /// The value as an integer, when it is one that fits.
    public var integer: Int64? {
        switch self {
        case .unsigned(let value): value <= UInt64(Int64.max) ? Int64(value) : nil
        case .signed(let value): value
        default: nil
        }
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}

public struct GGUFTensorInfo: Hashable, Sendable {
    public var name: String
    public var type: GGMLType
    /// Dimensions, innermost first, as GGUF stores them.
    public var dimensions: [Int64]
    /// Offset from the start of the data section.
    public var offset: Int64
    public var byteCount: Int64

    public var elementCount: Int64 { dimensions.reduce(1, *) }
}

/// The header of a GGUF file (versions 2 and 3): magic, version, metadata key/values and tensor infos.
/// Only the header is read, in chunks; the tensor data is never touched.
public struct GGUFHeader: Sendable {
    public var version: UInt32
    public var metadata: [String: GGUFValue]
    public var tensors: [GGUFTensorInfo]
    public var alignment: Int64
    public var dataOffset: Int64

    static let maxStringLength = 16 << 20
    /// Far above the ~2,000 tensors of the largest checkpoints. The file size alone bounds a count only to
    /// size / 32, which for a 10 GB file would still reserve tens of GB of tensor infos up front.
    static let maxTensorCount: UInt64 = 1 << 20
    static let maxDimensions = 4
    static let maxArrayNesting = 4

    public var architecture: String? { metadata["general.architecture"]?.string }

    /// An architecture-scoped count such as `llama.context_length`. Zero or negative counts as absent, as in
    /// config.json: recurrent models write `head_count_kv` 0, and a shape is never derived from a count < 1.
    public func architectureValue(_ key: String) -> Int64? {
        architecture.flatMap { metadata["\($0).\(key)"]?.integer }.flatMap { $0 > 0 ? $0 : nil }
    }

    public static func parse(_ source: any ByteSource, path: String) throws(RegistryError) -> GGUFHeader {
        var reader = GGUFReader(file: ModelFile(path: path, source: source))
        let file = reader.file
        let magic = try reader.bytes(4, what: "the magic number")
        guard magic == Array("GGUF".utf8) else { throw file.problem("it does not start with the GGUF magic number") }
        let version = try reader.u32("the version")
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw file.problem("big-endian GGUF files are not supported")
            }
            throw file.problem("GGUF version \(version) is not supported (only 2 and 3)")
        }
        // Every tensor info takes at least 32 bytes and every key/value at least 13, so counts the file
        // could not hold are refused before anything is allocated for them.
        let tensorCount = try reader.u64("the tensor count")
        guard tensorCount <= UInt64(file.size / 32) else {
            throw file.problem("tensor count \(tensorCount) is more than the file could hold")
        }
        guard tensorCount <= maxTensorCount else {
            throw file.problem("tensor count \(tensorCount) is over the limit of \(maxTensorCount)")
        }
        let valueCount = try reader.u64("the metadata count")
        guard valueCount <= UInt64(file.size / 13) else {
            throw file.problem("metadata count \(valueCount) is more than the file could hold")
        }

        var metadata: [String: GGUFValue] = [:]
        for _ in 0..<valueCount {
            let key = try reader.string("a metadata key")
            let type = try reader.u32("the type of '\(key)'")
            guard metadata[key] == nil else { throw file.problem("metadata key '\(key)' appears twice") }
            metadata[key] = try reader.value(type: type, key: key, depth: 0)
        }
        var alignment: Int64 = 32
        if let value = metadata["general.alignment"] {
            guard let declared = value.integer, declared > 0, declared <= 1 << 20, declared & (declared - 1) == 0 else {
                throw file.problem("general.alignment is not a power of two")
            }
            alignment = declared
        }

        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(Int(tensorCount))
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try reader.string("a tensor name")
            guard names.insert(name).inserted else { throw file.problem("tensor '\(name)' appears twice") }
            let dimensionCount = try reader.u32("the dimension count of '\(name)'")
            guard dimensionCount >= 1, dimensionCount <= maxDimensions else {
                throw file.problem("tensor '\(name)' has \(dimensionCount) dimensions (1 to \(maxDimensions) allowed)")
            }
            var dimensions: [Int64] = []
            var elements: Int64 = 1
            for _ in 0..<dimensionCount {
                let dimension = try reader.u64("a dimension of '\(name)'")
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int64(truncatingIfNeeded: dimension))
                guard dimension <= UInt64(Int64.max), !overflow else {
                    throw file.problem("tensor '\(name)' has absurd dimensions")
                }
                elements = product
                dimensions.append(Int64(dimension))
            }
            let typeID = try reader.u32("the type of '\(name)'")
            guard let type = GGMLType.all[typeID] else {
                throw file.problem("tensor '\(name)' has unknown ggml type \(typeID)")
            }
            guard dimensions[0] % type.blockSize == 0 else {
                throw file.problem(
                    "tensor '\(name)' has \(dimensions[0]) elements a row, not a multiple of the \(type.name) block size \(type.blockSize)"
                )
            }
            let offset = try reader.u64("the offset of '\(name)'")
            guard offset <= UInt64(file.size), Int64(offset) % alignment == 0 else {
                throw file.problem(
                    "tensor '\(name)' has offset \(offset), out of range or not a multiple of the alignment \(alignment)"
                )
            }
            let (byteCount, overflow) = (elements / type.blockSize).multipliedReportingOverflow(by: type.typeSize)
            guard !overflow else { throw file.problem("tensor '\(name)' has absurd dimensions") }
            tensors.append(
                GGUFTensorInfo(
                    name: name, type: type, dimensions: dimensions, offset: Int64(offset), byteCount: byteCount))
        }
        let dataOffset = (reader.position + alignment - 1) / alignment * alignment
        let dataLength = file.size - dataOffset
        var end: Int64 = 0
        var previous = ""
        for tensor in tensors.sorted(by: { $0.offset < $1.offset }) {
            guard tensor.offset >= end else {
                throw file.problem(
                    "tensor '\(tensor.name)' overlaps tensor '\(previous)' (offset \(tensor.offset) < \(end))")
            }
            guard tensor.byteCount <= dataLength - tensor.offset else {
                throw file.problem(
                    "tensor '\(tensor.name)' (\(tensor.byteCount) bytes at data offset \(tensor.offset)) runs past the end of the file (\(max(0, dataLength)) data bytes)"
                )
            }
            end = tensor.offset + tensor.byteCount
            previous = tensor.name
        }
        return GGUFHeader(
            version: version, metadata: metadata, tensors: tensors.sorted { $0.name < $1.name },
            alignment: alignment, dataOffset: dataOffset
        )
    }
}

/// Reads a GGUF header front to back, a chunk at a time, so a large vocabulary costs no more memory than
/// one chunk and a forged length never becomes an allocation.
struct GGUFReader {
    static let chunkSize = 1 << 20

    let file: ModelFile
    private(set) var position: Int64 = 0
    private var chunk: [UInt8] = []
    private var chunkStart: Int64 = 0

    init(file: ModelFile) {
        self.file = file
    }

    mutating func bytes(_ count: Int, what: @autoclosure () -> String) throws(RegistryError) -> [UInt8] {
        guard Int64(count) <= file.size - position else {
            throw file.problem(
                "\(what()) (\(count) bytes at offset \(position)) runs past the end of the file (\(file.size) bytes)")
        }
        let chunkEnd = chunkStart + Int64(chunk.count)
        if position < chunkStart || position + Int64(count) > chunkEnd {
            let length = Int(min(Int64(max(count, Self.chunkSize)), file.size - position))
            chunk = try file.bytes(at: position, count: length, what: what())
            chunkStart = position
        }
        let start = Int(position - chunkStart)
        position += Int64(count)
        return Array(chunk[start..<start + count])
    }

    mutating func skip(_ count: UInt64, what: @autoclosure () -> String) throws(RegistryError) {
        guard count <= UInt64(file.size - position) else {
            throw file.problem(
                "\(what()) (\(count) bytes at offset \(position)) runs past the end of the file (\(file.size) bytes)")
        }
        position += Int64(count)
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(RegistryError) -> UInt32 {
        try bytes(4, what: what()).littleEndian(UInt32.self, at: 0)
    }

    mutating func u64(_ what: @autoclosure () -> String) throws(RegistryError) -> UInt64 {
        try bytes(8, what: what()).littleEndian(UInt64.self, at: 0)
    }

    mutating func string(_ what: @autoclosure () -> String) throws(RegistryError) -> String {
        let length = try u64(what())
        guard length <= UInt64(GGUFHeader.maxStringLength) else {
            throw file.problem("\(what()) claims an absurd length of \(length) bytes")
        }
        return String(decoding: try bytes(Int(length), what: what()), as: UTF8.self)
    }

    /// Fixed sizes of the scalar value types; strings (8) and arrays (9) have none.
    static func scalarSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 10, 11, 12: 8
        default: nil
        }
    }

    mutating func value(type: UInt32, key: String, depth: Int) throws(RegistryError) -> GGUFValue {
        if let size = Self.scalarSize(type) {
            let raw = try bytes(size, what: "the value of '\(key)'")
            switch type {
            case 0: return .unsigned(UInt64(raw[0]))
            case 1: return .signed(Int64(Int8(bitPattern: raw[0])))
            case 2: return .unsigned(UInt64(raw.littleEndian(UInt16.self, at: 0)))
            case 3: return .signed(Int64(raw.littleEndian(Int16.self, at: 0)))
            case 4: return .unsigned(UInt64(raw.littleEndian(UInt32.self, at: 0)))
            case 5: return .signed(Int64(raw.littleEndian(Int32.self, at: 0)))
            case 6: return .float(Double(Float(bitPattern: raw.littleEndian(UInt32.self, at: 0))))
            case 7:
                guard raw[0] <= 1 else { throw file.problem("'\(key)' is a bool holding \(raw[0])") }
                return .bool(raw[0] == 1)
            case 10: return .unsigned(raw.littleEndian(UInt64.self, at: 0))
            case 11: return .signed(raw.littleEndian(Int64.self, at: 0))
            default: return .float(Double(bitPattern: raw.littleEndian(UInt64.self, at: 0)))
            }
        }
        switch type {
        case 8:
            return .string(try string("the value of '\(key)'"))
        case 9:
            guard depth < GGUFHeader.maxArrayNesting else { throw file.problem("'\(key)' nests arrays too deeply") }
            let elementType = try u32("the element type of '\(key)'")
            let count = try u64("the length of '\(key)'")
            try skipElements(count, type: elementType, key: key, depth: depth + 1)
            return .array(elementType: elementType, count: count)
        default:
            throw file.problem("'\(key)' has unknown value type \(type)")
        }
    }

    private mutating func skipElements(_ count: UInt64, type: UInt32, key: String, depth: Int) throws(RegistryError) {
        if let size = Self.scalarSize(type) {
            let (total, overflow) = count.multipliedReportingOverflow(by: UInt64(size))
            guard !overflow else { throw file.problem("'\(key)' claims an absurd array length \(count)") }
            try skip(total, what: "the elements of '\(key)'")
            return
        }
        // A string or array element takes at least 8 bytes: a longer claim cannot fit in the file.
        guard count <= UInt64(file.size - position) / 8 else {
            throw file.problem("'\(key)' claims an absurd array length \(count)")
        }
        for _ in 0..<count {
            if type == 8 {
                try skip(try u64("a string length in '\(key)'"), what: "a string in '\(key)'")
            } else {
                _ = try value(type: type, key: key, depth: depth)
            }
        }
    }
}
