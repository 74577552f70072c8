import Foundation
import Synchronization
import Testing

@testable import RegistryServer

struct HeaderCheckThreadsTests {
    /// Header parses yield to the threads that answer requests: they run niced, and only their own thread is.
    @Test func headerChecksRunAtALowerPriorityThanTheCaller() async throws {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        errno = 0
        let caller = getpriority(which, 0)
        let inPool = try await HeaderCheckThreads.run { getpriority(which, 0) }
        #expect(inPool == max(caller, HeaderCheckThreads.niceness))
        #expect(getpriority(which, 0) == caller)
    }

    /// Two at a time: a third parse waits for a thread instead of running beside them.
    @Test func atMostTwoHeaderChecksRunAtOnce() async throws {
        let counts = Concurrency()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await HeaderCheckThreads.run {
                        counts.state.withLock {
                            $0.running += 1
                            $0.peak = max($0.peak, $0.running)
                        }
                        usleep(50_000)
                        counts.state.withLock { $0.running -= 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(counts.state.withLock { $0.peak } == 2)
    }
}

private final class Concurrency: Sendable {
    let state = Mutex((running: 0, peak: 0))
}
