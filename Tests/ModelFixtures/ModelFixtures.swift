import Foundation
import ModelFormats
import ModelRegistryCore

/// Model files written by hand for tests: the formats' headers with real shapes, the data zeros or a hole.

/// A safetensors file written by hand: tensors laid out back to back, the data left as zeros. With
/// `sparse`, the data is a hole made by truncation, so a 16 GB model costs a few kilobytes of disk.
public struct SafetensorsWriter {
    public init() {}

    public struct Tensor {
        public var name: String
        public var dtype: String
        public var shape: [Int64]

        public var byteCount: Int64 {
            let bits: Int64 =
                switch dtype {
                case "F32", "I32", "U32": 32
                case "F16", "BF16", "I16": 16
                case "F64", "I64": 64
                default: 8
                }
            return shape.reduce(1, *) * bits / 8
        }
    }

    public var tensors: [Tensor] = []
    public var metadata: [String: String] = ["format": "pt"]

    public mutating func add(_ name: String, _ dtype: String, _ shape: [Int64]) {
        tensors.append(Tensor(name: name, dtype: dtype, shape: shape))
    }

    public func header() throws -> [UInt8] {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset: Int64 = 0
        for tensor in tensors {
            header[tensor.name] = [
                "dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.byteCount],
            ]
            offset += tensor.byteCount
        }
        var bytes = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while bytes.count % 8 != 0 { bytes.append(UInt8(ascii: " ")) }
        return withUnsafeBytes(of: UInt64(bytes.count).littleEndian, Array.init) + bytes
    }

    public var dataBytes: Int64 { tensors.reduce(0) { $0 + $1.byteCount } }

    /// The whole file in memory, for small tensors.
    public func bytes() throws -> [UInt8] {
        try header() + [UInt8](repeating: 0, count: Int(dataBytes))
    }

    public func write(to url: URL, sparse: Bool = false) throws {
        try writeModelFile(to: url, header: try header(), dataBytes: dataBytes, sparse: sparse)
    }
}

/// A GGUF file written by hand, in version 2 or 3, with zeroed (or sparse) tensor data.
public struct GGUFWriter {
    public init() {}

    public enum Value {
        case u32(UInt32)
        case string(String)
        case strings([String])
        case f32(Float)
    }

    public struct Tensor {
        public var name: String
        public var type: GGMLType
        public var dimensions: [Int64]
        public var byteCount: Int64 { dimensions.reduce(1, *) / type.blockSize * type.typeSize }
    }

    public var version: UInt32 = 3
    public var values: [(String, Value)] = []
    public var tensors: [Tensor] = []
    public let alignment: Int64 = 32

    public mutating func set(_ key: String, _ value: Value) { values.append((key, value)) }

    public mutating func add(_ name: String, _ typeName: String, _ dimensions: [Int64]) {
        let type = GGMLType.all.values.first { $0.name == typeName }!
        tensors.append(Tensor(name: name, type: type, dimensions: dimensions))
    }

    private static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    private static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }
    private static func string(_ text: String) -> [UInt8] { u64(UInt64(text.utf8.count)) + Array(text.utf8) }

    public func header() -> [UInt8] {
        var out =
            Array("GGUF".utf8) + Self.u32(version) + Self.u64(UInt64(tensors.count)) + Self.u64(UInt64(values.count))
        for (key, value) in values {
            out += Self.string(key)
            switch value {
            case .u32(let number): out += Self.u32(4) + Self.u32(number)
            case .f32(let number): out += Self.u32(6) + Self.u32(number.bitPattern)
            case .string(let text): out += Self.u32(8) + Self.string(text)
            case .strings(let texts):
                out += Self.u32(9) + Self.u32(8) + Self.u64(UInt64(texts.count)) + texts.flatMap(Self.string)
            }
        }
        var offset: Int64 = 0
        for tensor in tensors {
            out += Self.string(tensor.name) + Self.u32(UInt32(tensor.dimensions.count))
            out += tensor.dimensions.flatMap { Self.u64(UInt64($0)) }
            out += Self.u32(tensor.type.id) + Self.u64(UInt64(offset))
            offset += (tensor.byteCount + alignment - 1) / alignment * alignment
        }
        while Int64(out.count) % alignment != 0 { out.append(0) }
        return out
    }

    public var dataBytes: Int64 {
        guard let last = tensors.last else { return 0 }
        return tensors.dropLast().reduce(0) { $0 + ($1.byteCount + alignment - 1) / alignment * alignment }
            + last.byteCount
    }

    public func bytes() -> [UInt8] { header() + [UInt8](repeating: 0, count: Int(dataBytes)) }

    public func write(to url: URL, sparse: Bool = false) throws {
        try writeModelFile(to: url, header: header(), dataBytes: dataBytes, sparse: sparse)
    }
}

/// A header followed by `dataBytes` zeros; with `sparse`, the zeros are a hole made by truncation.
public func writeModelFile(to url: URL, header: [UInt8], dataBytes: Int64, sparse: Bool) throws {
    try Data(header).write(to: url)
    let handle = try FileHandle(forWritingTo: url)
    if sparse {
        try handle.truncate(atOffset: UInt64(header.count) + UInt64(dataBytes))
    } else {
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(count: Int(dataBytes)))
    }
    try handle.close()
}

/// A temporary directory for one test, removed afterwards.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL

    public init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("modelformats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    public func file(_ path: String) -> URL {
        let url = url.appendingPathComponent(path)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        return url
    }

    public func write(_ path: String, json: Any) throws {
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: file(path))
    }

    /// Inspects every regular file below the directory, as a push would.
    public func inspect() throws -> Inspection {
        let paths = try FileManager.default.subpathsOfDirectory(atPath: url.path).filter { path in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(
                atPath: url.appendingPathComponent(path).path, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
        return try ModelInspector.inspect(paths: try paths.map { try ManifestPath($0) }) { path throws(RegistryError) in
            try FileByteSource(path: url.appendingPathComponent(path.value).path)
        }
    }
}
