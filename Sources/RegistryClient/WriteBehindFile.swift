import CacheImage
import FileSystemIO
import ModelRegistryCore
import NIOCore

/// Writes a download's buffers to its file on a thread of its own, in order from `offset`, while the task that
/// receives them hashes them: hashing and writing then use two cores instead of taking turns on one. At most
/// `capacity` buffers wait in between (the sender suspends), so memory stays bounded. The disk writes behind it
/// too (`WritebackPacer`), so the file's `fsync` at the end has little left to wait for.
final class WriteBehindFile: Sendable {
    static let capacity = 64

    private let channel = ByteChannel<ByteBuffer>(capacity: WriteBehindFile.capacity)
    private let writing: Task<Void, any Error>

    init(_ file: POSIXFile, from offset: Int64) {
        let channel = self.channel
        writing = Task.detached {
            try await runOnThread {
                // However the writing ends, the sender must stop waiting for room in the channel.
                defer { channel.close() }
                var (next, pacer) = (offset, WritebackPacer(from: offset))
                while let buffer = try channel.receive() {
                    try buffer.withUnsafeReadableBytes { raw throws(RegistryError) in try file.write(raw, at: next) }
                    next += Int64(buffer.readableBytes)
                    pacer.wrote(upTo: next, in: file)
                }
            }
        }
    }

    /// Queues `buffer` after the ones before it; throws the writer's error once it has failed.
    func write(_ buffer: ByteBuffer) async throws {
        do {
            try await channel.send(buffer)
        } catch is ByteChannelReaderGone {
            try await writing.value
            throw RegistryError(.storageFailure, "the file's writer stopped")
        }
    }

    /// Waits until every queued buffer is written; throws what stopped the writer, if anything did.
    func finish() async throws {
        channel.finish()
        try await writing.value
    }
}
