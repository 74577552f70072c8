import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import Testing

/// Writes of many buffers at once (`POSIXFile.write(_:at:)` with `pwritev`) and the thread that writes a stream's
/// buffers behind the task receiving them (`WriteBehindFile`), which the blob store's uploads and the client's
/// downloads use.
@Suite struct WriteBehindFileTests {
    /// Buffers of `sizes` bytes, each a slice of a larger buffer (as network reads are), and their bytes in order.
    static func buffers(_ sizes: [Int]) -> ([ByteBuffer], [UInt8]) {
        var generator = SystemRandomNumberGenerator()
        var all: [UInt8] = []
        let buffers = sizes.map { size in
            let bytes = (0..<size + 7).map { _ in UInt8.random(in: 0...255, using: &generator) }
            all += bytes[3..<size + 3]
            var buffer = ByteBuffer(bytes: bytes)
            buffer.moveReaderIndex(forwardBy: 3)
            buffer.moveWriterIndex(to: size + 3)
            return buffer
        }
        return (buffers, all)
    }

    @Test func moreBuffersThanOneSystemCallTakesAreWrittenInOrder() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("file").path
            // Empty buffers among them, and more of them than one pwritev takes.
            let sizes = (0..<2500).map { $0 % 97 == 0 ? 0 : 1 + ($0 * 7919) % 9000 }
            let (buffers, bytes) = Self.buffers(sizes)
            let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT, mode: 0o600)
            try file.write([ByteBuffer(repeating: 9, count: 100)], at: 0)
            try file.write(buffers, at: 100)
            try file.close()
            let written = try #require(FileManager.default.contents(atPath: path))
            #expect(written.count == 100 + bytes.count)
            #expect(Array(written.dropFirst(100)) == bytes)
        }
    }

    @Test func everyBufferReachesTheFileInOrderEvenWhenTheSenderHasToWait() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("file").path
            // Several times the bytes that may wait, in network-sized reads of odd sizes.
            let (buffers, bytes) = Self.buffers((0..<400).map { 40_000 + ($0 * 131) % 25_000 })
            #expect(bytes.count > 3 * WriteBehindFile.capacity)
            let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT, mode: 0o600)
            try file.truncate(to: 5)
            let writer = WriteBehindFile(file, from: 5)
            for buffer in buffers { try await writer.write(buffer) }
            try await writer.finish()
            try file.close()
            let written = try #require(FileManager.default.contents(atPath: path))
            #expect(Array(written.dropFirst(5)) == bytes)
        }
    }

    @Test func aWriterThatFailsStopsTheSenderWithItsError() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("file").path
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            // Opened for reading only: the first write fails.
            let file = try POSIXFile.openForReading(path)
            let writer = WriteBehindFile(file, from: 0)
            let (buffers, _) = Self.buffers(Array(repeating: 65_536, count: 200))
            // More than fits: the sender is refused (or let go while it waits for room), never left waiting.
            let failure = await #expect(throws: RegistryError.self) {
                for buffer in buffers { try await writer.write(buffer) }
                try await writer.finish()
            }
            #expect(failure?.code == .storageFailure)
            #expect(failure?.message.contains(path) == true, "\(failure?.message ?? "")")
        }
    }

    /// A sender on a thread of its own (the client's plain-HTTP download) blocks the thread for room instead.
    @Test func aThreadsBuffersReachTheFileInOrderAndAFailureStopsIt() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory.appendingPathComponent("file").path
            let (buffers, bytes) = Self.buffers((0..<40).map { 1 << 20 | ($0 * 4099) % 60_000 })
            #expect(bytes.count > 8 * WriteBehindFile.capacity)
            let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT, mode: 0o600)
            let writer = WriteBehindFile(file, from: 0)
            try await runOnThread { for buffer in buffers { try writer.writeWaiting(buffer) } }
            try await writer.finish()
            try file.close()
            let written = try #require(FileManager.default.contents(atPath: path))
            #expect(Array(written) == bytes)

            let readOnly = try POSIXFile.openForReading(path)
            let failing = WriteBehindFile(readOnly, from: 0)
            let failure = await #expect(throws: RegistryError.self) {
                try await runOnThread { for buffer in buffers { try failing.writeWaiting(buffer) } }
            }
            #expect(failure?.code == .storageFailure)
            #expect(failure?.message.contains(path) == true, "\(failure?.message ?? "")")
            await #expect(throws: RegistryError.self) { try await failing.finish() }
        }
    }
}
