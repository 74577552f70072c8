import Foundation

extension Process {
    /// `run()`, one process at a time across the whole test process: Foundation's `Process.run` crashed once
    /// (a bad pointer in its memmove) while tests on other threads started theirs.
    public func runAlone() throws {
        try Self.spawning.withLock { try run() }
    }

    private static let spawning = NSLock()
}
