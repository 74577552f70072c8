import FileSystemIO
import ModelRegistryCore
import NIOCore
import NIOPosix
import Synchronization

/// The threads the file-system blob store waits on the disk with: its own, so that long work on NIO's shared
/// blocking pool (a weight header parsed at publish, a database snapshot, a garbage collection) never holds up a
/// download or the readiness probe behind it.
enum DiskThreads {
    static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 4)
        pool.start()
        return pool
    }()
}

extension POSIXFile {
    /// `range` of the file as a stream of chunks of at most `BlobBytes.chunkLimit` bytes, each read on the
    /// store's disk threads when the consumer asks for it: a pread of a cold file can wait on the disk, which must
    /// never hold an event loop or a task of the cooperative pool. A file shorter than the range ends it with
    /// `.integrity`.
    public func bytes(_ range: Range<Int64>) -> BlobBytes {
        BlobBytes {
            var next = range.lowerBound
            let window = ReadWindow()
            return { () async throws -> ByteBuffer? in
                let offset = next
                guard offset < range.upperBound else { return nil }
                await window.waitForRoom()
                let length = Int(min(Int64(window.chunkSize(limit: BlobBytes.chunkLimit)), range.upperBound - offset))
                // The box holds the buffer's only reference while the disk thread reads into it, so the read
                // fills its memory in place instead of copying it first.
                let box = BufferBox()
                box.buffer = window.chunk(capacity: length)
                try await DiskThreads.pool.runIfActive {
                    try self.read(into: &box.buffer, at: offset, length: length)
                }
                var buffer = ByteBuffer()
                swap(&box.buffer, &buffer)
                guard buffer.readableBytes == length else {
                    throw RegistryError(.integrity, "\(self.path) ended before \(range.upperBound) bytes")
                }
                next = offset + Int64(length)
                return buffer
            }
        }
    }
}

/// A buffer moved to a disk thread and back without a second reference to it.
private final class BufferBox: @unchecked Sendable {
    var buffer = ByteBuffer()
}
