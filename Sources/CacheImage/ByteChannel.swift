import Foundation

/// Hands byte chunks from async code (an HTTP body) to a thread that reads synchronously (libarchive's
/// read callback, a file's writes). At most `capacity` chunks wait in between: a sender suspends, never
/// blocks a thread, until the reader catches up, so memory stays bounded whatever the stream's size.
public final class ByteChannel<Chunk: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [Chunk] = []
    private var waitingSenders: [(Chunk, CheckedContinuation<Void, any Error>)] = []
    private var finished = false
    private var failure: (any Error)?
    private var readerGone = false
    private var readerWaits = false
    private let capacity: Int

    public init(capacity: Int = 8) {
        self.capacity = capacity
    }

    /// Suspends while the channel is full; throws once the reader has stopped. With room, it returns without
    /// suspending, and wakes the reader only if it waits: a suspension and a wake for every 64 KiB network read
    /// cost more CPU than the bytes' own work.
    public func send(_ chunk: Chunk) async throws {
        if queueWithoutWaiting(chunk) { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            condition.lock()
            defer { condition.unlock() }
            if readerGone {
                continuation.resume(throwing: ByteChannelReaderGone())
            } else if chunks.count < capacity {
                chunks.append(chunk)
                if readerWaits { condition.signal() }
                continuation.resume()
            } else {
                waitingSenders.append((chunk, continuation))
            }
        }
    }

    private func queueWithoutWaiting(_ chunk: Chunk) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !readerGone, chunks.count < capacity, waitingSenders.isEmpty else { return false }
        chunks.append(chunk)
        if readerWaits { condition.signal() }
        return true
    }

    /// No more chunks; with an error, the reader gets it after the chunks already sent.
    public func finish(throwing error: (any Error)? = nil) {
        condition.lock()
        finished = true
        failure = error
        condition.signal()
        condition.unlock()
    }

    /// Blocks until a chunk arrives; nil at the end.
    public func receive() throws -> Chunk? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished {
            readerWaits = true
            condition.wait()
            readerWaits = false
        }
        guard !chunks.isEmpty else {
            if let failure { throw failure }
            return nil
        }
        let chunk = chunks.removeFirst()
        if !waitingSenders.isEmpty {
            let (next, continuation) = waitingSenders.removeFirst()
            chunks.append(next)
            continuation.resume()
        }
        return chunk
    }

    /// The reader stops early: waiting and later senders get `ByteChannelReaderGone`.
    public func close() {
        condition.lock()
        readerGone = true
        let senders = waitingSenders
        waitingSenders = []
        chunks = []
        condition.unlock()
        for (_, continuation) in senders { continuation.resume(throwing: ByteChannelReaderGone()) }
    }
}

/// What a sender gets once the reader of a `ByteChannel` has stopped.
public struct ByteChannelReaderGone: Error {}
