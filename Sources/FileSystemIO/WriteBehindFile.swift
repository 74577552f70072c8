import Foundation
import ModelRegistryCore
import NIOCore

/// Writes a download's buffers to its file on a thread of its own, in order from `offset`, while the task that
/// receives them hashes them: hashing and writing then use two cores instead of taking turns on one. The disk
/// writes behind it too (`WritebackPacer`), so the file's `fsync` at the end has little left to wait for.
///
/// A network read is 64 KiB at most: a hand-off (the task suspended and woken, the thread woken) and a system call
/// for each of them cost more CPU than writing the bytes. So the task queues buffers without suspending, the
/// thread is woken once `batchBytes` are queued (or at the end) and writes all of them with one `pwritev`, and
/// the task waits only when `capacity` bytes are queued.
public final class WriteBehindFile: @unchecked Sendable {
    public static let capacity = 4 << 20
    public static let batchBytes = 1 << 20

    // All of the state below is read and changed with `condition` locked.
    private let condition = NSCondition()
    private var queued: [ByteBuffer] = []
    private var queuedBytes = 0
    private var writerWaits = false
    private var finished = false
    /// The writer stopped (it failed): later buffers are refused.
    private var writerGone = false
    private var senderWaiting: CheckedContinuation<Void, Never>?
    /// A sender on a thread of its own (`writeWaiting`) waits for room.
    private var threadWaits = false
    /// What stopped the writer, for a sender that cannot await it.
    private var failure: (any Error)?

    private var writing: Task<Void, any Error>?

    public init(_ file: POSIXFile, from offset: Int64) {
        writing = Task.detached { [self] in
            try await runOnThread {
                var (next, pacer) = (offset, WritebackPacer(from: offset))
                do {
                    while let (batch, bytes) = self.nextBatch() {
                        try file.write(batch, at: next)
                        next += Int64(bytes)
                        pacer.wrote(upTo: next, in: file)
                    }
                } catch {
                    // The sender must not wait for room any longer.
                    self.stopWriting(failure: error)
                    throw error
                }
                self.stopWriting(failure: nil)
            }
        }
    }

    /// Queues `buffer` after the ones before it; throws the writer's error once it has failed.
    public func write(_ buffer: ByteBuffer) async throws {
        while true {
            switch queue(buffer) {
            case .queued:
                return
            case .writerGone:
                try await writing?.value
                throw RegistryError(.storageFailure, "the file's writer stopped")
            case .full:
                await withCheckedContinuation { continuation in waitForRoom(continuation) }
            }
        }
    }

    /// `write` for a sender on a thread of its own: waits for room blocking the thread.
    public func writeWaiting(_ buffer: ByteBuffer) throws {
        condition.lock()
        defer { condition.unlock() }
        while queuedBytes >= Self.capacity, !writerGone {
            threadWaits = true
            condition.wait()
            threadWaits = false
        }
        if writerGone { throw failure ?? RegistryError(.storageFailure, "the file's writer stopped") }
        queued.append(buffer)
        queuedBytes += buffer.readableBytes
        if writerWaits, queuedBytes >= Self.batchBytes { condition.signal() }
    }

    /// Waits until every queued buffer is written; throws what stopped the writer, if anything did.
    public func finish() async throws {
        finishQueue()
        try await writing?.value
    }

    private enum Queueing { case queued, full, writerGone }

    private func queue(_ buffer: ByteBuffer) -> Queueing {
        condition.lock()
        defer { condition.unlock() }
        if writerGone { return .writerGone }
        guard queuedBytes < Self.capacity else { return .full }
        queued.append(buffer)
        queuedBytes += buffer.readableBytes
        if writerWaits, queuedBytes >= Self.batchBytes { condition.signal() }
        return .queued
    }

    private func waitForRoom(_ continuation: CheckedContinuation<Void, Never>) {
        condition.lock()
        if queuedBytes < Self.capacity || writerGone {
            condition.unlock()
            continuation.resume()
        } else {
            senderWaiting = continuation
            condition.unlock()
        }
    }

    private func finishQueue() {
        condition.lock()
        finished = true
        condition.signal()
        condition.unlock()
    }

    /// The writer's next buffers, once a batch is queued or the sender finished; nil when all are written.
    private func nextBatch() -> ([ByteBuffer], Int)? {
        condition.lock()
        while queuedBytes < Self.batchBytes, !finished {
            writerWaits = true
            condition.wait()
            writerWaits = false
        }
        guard !queued.isEmpty else {
            condition.unlock()
            return nil
        }
        let batch = (queued, queuedBytes)
        (queued, queuedBytes) = ([], 0)
        let sender = senderWaiting
        senderWaiting = nil
        if threadWaits { condition.signal() }
        condition.unlock()
        sender?.resume()
        return batch
    }

    private func stopWriting(failure: (any Error)?) {
        condition.lock()
        writerGone = true
        self.failure = failure
        queued = []
        condition.broadcast()
        let sender = senderWaiting
        senderWaiting = nil
        condition.unlock()
        sender?.resume()
    }
}

/// Runs blocking work (libarchive's reads and writes, a file's writes, a socket's reads) on a thread of its
/// own, off the cooperative pool.
public func runOnThread<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result, any Error>) in
        Thread { continuation.resume(with: Swift.Result { try body() }) }.start()
    }
}
