import Foundation
import Synchronization
import Testing

@testable import RegistryClient

@Suite struct DeadlineTests {
    struct Expired: Error {}

    /// Work that answers its cancellation at once with a `CancellationError` (a transfer whose socket is shut
    /// down) must still end in the deadline's error: the caller reports a timeout, not a cancellation.
    @Test func workThatEndsWhenCancelledStillEndsInTheDeadlinesError() async throws {
        let waiter = Mutex<CheckedContinuation<Void, any Error>?>(nil)
        let work: @Sendable () async throws -> Void = {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    waiter.withLock { $0 = continuation }
                }
            } onCancel: {
                waiter.withLock { $0.take() }?.resume(throwing: CancellationError())
                // Give the work's own ending every chance to arrive first.
                usleep(50_000)
            }
        }
        let deadline = Deadline(.now + .milliseconds(100))
        await #expect(throws: Expired.self) {
            try await deadline.run(expired: { Expired() }, work)
        }
    }

    @Test func workThatEndsInTimeKeepsItsResult() async throws {
        let deadline = Deadline(.now + .seconds(10))
        let answer = try await deadline.run(expired: { Expired() }, { 42 })
        #expect(answer == 42)
    }
}
