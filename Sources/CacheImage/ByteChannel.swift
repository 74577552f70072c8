import Foundation

/// Hands byte chunks from async code (an HTTP body) to a thread that reads synchronously (libarchive's
/// read callback). At most `capacity` chunks wait in between: a sender suspends, never blocks a thread,
/// until the reader catches up, so memory stays bounded whatever the archive size.
public final class ByteChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var waitingSenders: [([UInt8], CheckedContinuation<Void, any Error>)] = []
    private var finished = false
    private var failure: (any Error)?
    private var readerGone = false
    private let capacity: Int

    public struct ReaderGone: Error {}

    public init(capacity: Int = 8) {
        self.capacity = capacity
    }

    /// Suspends while the channel is full; throws once the reader has stopped.
    public func send(_ chunk: [UInt8]) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            condition.lock()
            defer { condition.unlock() }
            if readerGone {
                continuation.resume(throwing: ReaderGone())
            } else if chunks.count < capacity {
                chunks.append(chunk)
                condition.signal()
                continuation.resume()
            } else {
                waitingSenders.append((chunk, continuation))
            }
        }
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
    public func receive() throws -> [UInt8]? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished { condition.wait() }
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

    /// The reader stops early: waiting and later senders get `ReaderGone`.
    public func close() {
        condition.lock()
        readerGone = true
        let senders = waitingSenders
        waitingSenders = []
        chunks = []
        condition.unlock()
        for (_, continuation) in senders { continuation.resume(throwing: ReaderGone()) }
    }
}
