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
            let buffers = RecycledBuffers()
            return { () async throws -> ByteBuffer? in
                let offset = next
                guard offset < range.upperBound else { return nil }
                let length = Int(min(Int64(BlobBytes.chunkLimit), range.upperBound - offset))
                // The box holds the buffer's only reference while the disk thread reads into it, so the read
                // fills its memory in place instead of copying it first.
                let box = BufferBox()
                var buffer = buffers.take(capacity: length)
                swap(&box.buffer, &buffer)
                try await DiskThreads.pool.runIfActive {
                    try self.read(into: &box.buffer, at: offset, length: length)
                }
                swap(&box.buffer, &buffer)
                guard buffer.readableBytes == length else {
                    throw RegistryError(.integrity, "\(self.path) ended before \(range.upperBound) bytes")
                }
                buffers.handOut(buffer)
                next = offset + Int64(length)
                return buffer
            }
        }
    }
}

/// The read buffers of one stream of chunks, used again once their reader (the socket) has let go of them:
/// memory new to the process costs a page fault and a zeroed page every 4 KiB, a quarter of the CPU a download
/// took on the server. The last `kept` buffers handed out are kept; the oldest is used again when it is free,
/// and a new one allocated when it is not. All streams together keep at most `budget` buffers, so many
/// downloads at once cost at most that much more memory: the streams beyond it allocate each chunk anew.
final class RecycledBuffers {
    static let kept = 2
    static let budget = 16
    private static let keptByAll = Atomic<Int>(0)

    private var handedOut: [ByteBuffer] = []
    private var slots = 0

    deinit { Self.keptByAll.subtract(slots, ordering: .relaxed) }

    func take(capacity: Int) -> ByteBuffer {
        guard handedOut.count == Self.kept else { return ByteBufferAllocator().buffer(capacity: capacity) }
        var buffer = handedOut.removeFirst()
        // Keeps the memory when this is the only reference to it; else leaves it to its holder and allocates.
        buffer.clear()
        return buffer
    }

    func handOut(_ buffer: ByteBuffer) {
        guard handedOut.count < slots || reserveSlot() else { return }
        handedOut.append(buffer)
    }

    private func reserveSlot() -> Bool {
        guard slots < Self.kept else { return false }
        var current = Self.keptByAll.load(ordering: .relaxed)
        while current < Self.budget {
            let (exchanged, original) = Self.keptByAll.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged {
                slots += 1
                return true
            }
            current = original
        }
        return false
    }
}

/// A buffer moved to a disk thread and back without a second reference to it.
private final class BufferBox: @unchecked Sendable {
    var buffer = ByteBuffer()
}
