@_spi(CustomByteBufferAllocator) import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The memory of the chunks a blob store streams (`BlobBytes`) and a client's downloads read into, from an
/// allocator that learns when whoever holds a chunk (the socket, a file's writer) lets go of it. That is what
/// lets a stream read ahead only as far as its `ReadWindow` allows, and lets freed chunks be used again: memory
/// new to the process costs a page fault and a zeroed page every 4 KiB, a quarter of the CPU a download took on
/// the server.
///
/// Each allocation starts with a 16-byte header (so the chunk stays 16-byte aligned): its capacity, and the
/// window it counts against (retained), or zero.
public enum ChunkMemory {
    /// Freed chunks kept for reuse, at most, in bytes; the rest go back to the system.
    static let keptBytes = 16 << 20

    public static let allocator = ByteBufferAllocator(
        allocate: { size in ChunkMemory.allocate(size) },
        reallocate: { pointer, _, size in ChunkMemory.reallocate(pointer, size) },
        deallocate: { pointer in ChunkMemory.deallocate(pointer) },
        copy: { destination, source, count in destination.copyMemory(from: source, byteCount: count) }
    )

    private static let headerSize = 16

    private struct FreeChunks {
        /// Addresses (as integers: pointers are not Sendable) by capacity.
        var byCapacity: [Int: [UInt]] = [:]
        var bytes = 0
    }
    private static let free = Mutex(FreeChunks())

    private static func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let reused = free.withLock { free -> UInt? in
            guard let chunk = free.byCapacity[size]?.popLast() else { return nil }
            free.bytes -= size
            return chunk
        }
        guard let base = UnsafeMutableRawPointer(bitPattern: reused ?? 0) ?? malloc(headerSize + size) else {
            return nil
        }
        base.storeBytes(of: size, as: Int.self)
        var owner: UInt = 0
        if let window = ReadWindow.current {
            window.chunkAllocated()
            owner = UInt(bitPattern: Unmanaged.passRetained(window).toOpaque())
        }
        base.storeBytes(of: owner, toByteOffset: 8, as: UInt.self)
        return base + headerSize
    }

    private static func reallocate(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
        guard let pointer else { return allocate(size) }
        let base = pointer - headerSize
        guard base.load(as: Int.self) < size else { return pointer }
        guard let moved = realloc(base, headerSize + size) else { return nil }
        moved.storeBytes(of: size, as: Int.self)
        return moved + headerSize
    }

    private static func deallocate(_ pointer: UnsafeMutableRawPointer) {
        let base = pointer - headerSize
        let owner = base.load(fromByteOffset: 8, as: UInt.self)
        if let window = UnsafeRawPointer(bitPattern: owner) {
            Unmanaged<ReadWindow>.fromOpaque(window).takeRetainedValue().chunkReleased()
        }
        let capacity = base.load(as: Int.self)
        let kept = free.withLock { free -> Bool in
            guard free.bytes + capacity <= keptBytes else { return false }
            free.byCapacity[capacity, default: []].append(UInt(bitPattern: base))
            free.bytes += capacity
            return true
        }
        if !kept { Glibc.free(base) }
    }
}

/// How far one stream of chunks (one iteration of a `BlobBytes`) reads ahead of whoever consumes it: a chunk is read only while fewer than
/// `chunksAhead` of the stream's chunks are still held (queued on the socket, in a writer's buffer), so the
/// memory a download holds does not grow while the event loop or the client falls behind. All streams share
/// `budget`: with many at once, each reads smaller chunks.
public final class ReadWindow: Sendable {
    /// The window of the chunk being allocated on this task (see `ChunkMemory`).
    @TaskLocal fileprivate static var current: ReadWindow?

    public static let chunksAhead = 3
    public static let budget = 64 << 20
    private static let open = Atomic<Int>(0)

    /// Bounds the wait for room: a consumer that keeps chunks while it asks for more (one that gathers an
    /// object-store part) is served after this, rather than never.
    let longestWait: Duration

    private struct State {
        var held = 0
        var waiter: CheckedContinuation<Void, Never>?
        /// Set by a wake that found no waiter: the wait about to begin returns at once.
        var woken = false
    }
    private let state = Mutex(State())

    public init(longestWait: Duration = .milliseconds(250)) {
        self.longestWait = longestWait
        Self.open.add(1, ordering: .relaxed)
    }

    deinit { Self.open.subtract(1, ordering: .relaxed) }

    /// The size of the next chunk, at most `limit`: the budget shared by the open streams, a power of two
    /// between 64 KiB and `limit`.
    public func chunkSize(limit: Int) -> Int {
        let share = Self.budget / (Self.chunksAhead * max(1, Self.open.load(ordering: .relaxed)))
        var size = 64 << 10
        while size * 2 <= min(share, limit) { size *= 2 }
        return min(size, limit)
    }

    /// Returns once fewer than `chunksAhead` chunks of this stream are held, or after `longestWait`.
    public func waitForRoom() async {
        let room = state.withLock { state -> Bool in
            state.woken = false
            return state.held < Self.chunksAhead
        }
        guard !room else { return }
        let timer = Task { [self] in
            try? await Task.sleep(for: longestWait)
            wake()
        }
        defer { timer.cancel() }
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Bool in
                guard state.held >= Self.chunksAhead, !state.woken else { return true }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// A new chunk of `capacity` bytes, counted against this window until every holder has let go of it.
    public func chunk(capacity: Int) -> ByteBuffer {
        Self.$current.withValue(self) { ChunkMemory.allocator.buffer(capacity: capacity) }
    }

    fileprivate func chunkAllocated() { state.withLock { $0.held += 1 } }

    fileprivate func chunkReleased() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.held -= 1
            guard state.held < Self.chunksAhead else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func wake() {
        state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.woken = true
                return nil
            }
            state.waiter = nil
            return waiter
        }?.resume()
    }
}
