import Foundation
import NIOPosix

/// The threads that re-read weight headers at publish, the server's heaviest CPU work: a 90 MB safetensors
/// header costs a core for a second and several hundred MB. Two threads, so at most two parses hold memory at
/// once while the other publishes wait in the queue without holding a thread; at a lower scheduling priority
/// (nice 10), so that on a busy node the event loops and disk threads that answer downloads and the readiness
/// probe run first (issue 16.9).
enum HeaderCheckThreads {
    static let niceness: Int32 = 10

    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive {
            // Linux keeps niceness per thread, and `who` 0 is the calling thread: this lowers this pool thread
            // alone. Raising one's own niceness needs no privilege; failing to is harmless, so it is not checked.
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
            return try body()
        }
    }
}
