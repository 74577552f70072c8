import NIOCore
import Synchronization
import Testing

@testable import ModelRegistryCore

/// How far a stream of file chunks reads ahead of whoever holds its chunks (`ReadWindow`, `ChunkMemory`).
@Suite struct ReadWindowTests {
    /// A chunk counts against its stream's window from its allocation until its last holder lets go (the
    /// socket, a writer's queue): while `chunksAhead` are held the next read waits, and a chunk let go by
    /// every holder ends the wait.
    @Test func aFullWindowWaitsUntilAChunkIsLetGoByEveryHolder() async throws {
        let window = ReadWindow(longestWait: .seconds(600))
        var held = (0..<ReadWindow.chunksAhead).map { index in
            var chunk = window.chunk(capacity: 4096)
            chunk.writeInteger(UInt32(index))
            return chunk
        }
        // A second holder of the first chunk, as a write queued on a socket is.
        var queued: ByteBuffer? = held[0]
        let finished = Atomic<Bool>(false)
        let waiting = Task {
            await window.waitForRoom()
            finished.store(true, ordering: .relaxed)
        }
        try await Task.sleep(for: .milliseconds(200))
        let wentAhead = finished.load(ordering: .relaxed)
        #expect(!wentAhead, "a read went ahead with the window full")
        held.removeFirst()
        try await Task.sleep(for: .milliseconds(200))
        let queuedCounted = finished.load(ordering: .relaxed)
        #expect(!queuedCounted, "a chunk still queued counted as let go")
        #expect(queued?.getInteger(at: 0, as: UInt32.self) == 0)
        queued = nil
        await waiting.value
        #expect(held.map { $0.getInteger(at: 0, as: UInt32.self) } == [1, 2])
    }

    /// A window with room does not wait, and one whose chunks are never let go waits only its longest.
    @Test func aWindowWaitsAtMostItsLongest() async throws {
        let window = ReadWindow(longestWait: .milliseconds(50))
        await window.waitForRoom()
        let held = (0..<ReadWindow.chunksAhead).map { _ in
            window.chunk(capacity: 4096)
        }
        await window.waitForRoom()
        withExtendedLifetime(held) {}
    }

    /// Many streams at once share the read-ahead budget: each reads smaller chunks, never below 64 KiB.
    @Test func manyStreamsAtOnceReadSmallerChunks() {
        let streams = (0..<100).map { _ in ReadWindow() }
        let size = streams[0].chunkSize(limit: 1 << 20)
        #expect(size <= ReadWindow.budget / (ReadWindow.chunksAhead * 100) && size >= 64 << 10, "\(size)")
        #expect(size & (size - 1) == 0, "\(size) is not a power of two")
        #expect(streams[0].chunkSize(limit: 64 << 10) == 64 << 10)
    }
}
