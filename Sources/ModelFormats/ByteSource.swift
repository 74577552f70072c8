import FileSystemIO
import ModelRegistryCore
import NIOCore

/// Random access to the bytes of one model file, wherever it is: a local file (the client, before a push)
/// or a stored blob (the server, at publish). Parsers only ever ask for the ranges they need.
public protocol ByteSource: Sendable {
    var size: Int64 { get }
    /// Up to `length` bytes at `offset`; fewer only at the end of the source.
    func read(at offset: Int64, length: Int) throws(RegistryError) -> [UInt8]
}

/// A file on the local disk.
public struct FileByteSource: ByteSource {
    let file: POSIXFile
    public let size: Int64

    public init(path: String) throws(RegistryError) {
        file = try POSIXFile.openForReading(path)
        size = try file.size()
    }

    public func read(at offset: Int64, length: Int) throws(RegistryError) -> [UInt8] {
        var buffer = try file.readBuffer(at: offset, length: length)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }
}

/// A stored blob, read through the blob store.
public struct BlobByteSource: ByteSource {
    let reader: any BlobReader

    public init(_ reader: any BlobReader) {
        self.reader = reader
    }

    public var size: Int64 { reader.size }

    public func read(at offset: Int64, length: Int) throws(RegistryError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        while bytes.count < length {
            var buffer = try reader.read(at: offset + Int64(bytes.count), maxLength: length - bytes.count)
            guard buffer.readableBytes > 0 else { break }
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        return bytes
    }
}

/// Bytes held in memory: small files such as config.json, and tests.
public struct MemoryByteSource: ByteSource {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var size: Int64 { Int64(bytes.count) }

    public func read(at offset: Int64, length: Int) throws(RegistryError) -> [UInt8] {
        guard offset >= 0, offset < size, length > 0 else { return [] }
        let start = Int(offset)
        return Array(bytes[start..<min(bytes.count, start + length)])
    }
}

/// One model file being parsed: its name for error messages, and reads that are checked against its size.
struct ModelFile {
    let path: String
    let source: any ByteSource

    var size: Int64 { source.size }

    /// A refusal that names the file and what is wrong with it.
    func problem(_ what: String) -> RegistryError {
        RegistryError(.invalidModelFile, "invalid model file \(path): \(what)")
    }

    /// Exactly `count` bytes at `offset`, or an error saying the file ends first.
    func bytes(at offset: Int64, count: Int, what: @autoclosure () -> String) throws(RegistryError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, Int64(count) <= size - offset else {
            throw problem(
                "\(what()) (\(count) bytes at offset \(offset)) runs past the end of the file (\(size) bytes)")
        }
        let bytes = try source.read(at: offset, length: count)
        guard bytes.count == count else {
            throw problem("\(what()) could not be read: the file is shorter than it says")
        }
        return bytes
    }
}

/// Little-endian integers from a byte array.
extension Array where Element == UInt8 {
    func littleEndian<T: FixedWidthInteger>(_: T.Type, at index: Int) -> T {
        var value: T = 0
        for byte in 0..<MemoryLayout<T>.size {
            value |= T(truncatingIfNeeded: self[index + byte]) << (8 * byte)
        }
        return value
    }
}
