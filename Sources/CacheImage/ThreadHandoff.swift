import Foundation

/// Hands elements from a thread that works synchronously (libarchive reading a layer) to async code, one at
/// a time: the thread blocks in `send` until the previous element is taken, so memory stays bounded however
/// far ahead the thread could read. The reverse of `ByteChannel`.
public final class ThreadHandoff<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: Element?
    private var waiting: CheckedContinuation<Element?, any Error>?
    private var finished = false
    private var failure: (any Error)?
    private var receiverGone = false

    public struct ReceiverGone: Error {}

    public init() {}

    /// Blocks until the receiver has room; throws `ReceiverGone` once it has stopped.
    public func send(_ element: Element) throws {
        condition.lock()
        while pending != nil && !receiverGone { condition.wait() }
        guard !receiverGone else {
            condition.unlock()
            throw ReceiverGone()
        }
        if let waiting {
            self.waiting = nil
            condition.unlock()
            waiting.resume(returning: element)
        } else {
            pending = element
            condition.unlock()
        }
    }

    /// No more elements; with an error, the receiver gets it after the element already sent.
    public func finish(throwing error: (any Error)? = nil) {
        condition.lock()
        finished = true
        failure = error
        let waiting = pending == nil ? self.waiting : nil
        if waiting != nil { self.waiting = nil }
        condition.unlock()
        if let waiting {
            if let error { waiting.resume(throwing: error) } else { waiting.resume(returning: nil) }
        }
    }

    /// The next element; nil at the end.
    public func receive() async throws -> Element? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
            condition.lock()
            if let element = pending {
                pending = nil
                condition.signal()
                condition.unlock()
                continuation.resume(returning: element)
            } else if finished {
                let failure = self.failure
                condition.unlock()
                if let failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: nil) }
            } else {
                waiting = continuation
                condition.unlock()
            }
        }
    }

    /// The receiver stops early: a blocked and every later `send` throws `ReceiverGone`.
    public func close() {
        condition.lock()
        receiverGone = true
        pending = nil
        condition.broadcast()
        condition.unlock()
    }
}
