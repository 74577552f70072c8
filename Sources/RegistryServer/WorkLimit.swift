/// At most `limit` pieces of heavy work at once; the others wait for a turn without holding a thread.
///
/// Publishing re-parses every weight file's header: a 90 MB safetensors header costs its size several times
/// over in memory and a core for a while. Unbounded, a handful of concurrent publishes exhausts a pod's
/// memory limit and starves the event loops that answer the readiness probe.
actor WorkLimit {
    private let limit: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(_ limit: Int) {
        self.limit = max(1, limit)
    }

    /// Runs `body` once a turn is free.
    nonisolated func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        await acquire()
        do {
            let result = try await body()
            await release()
            return result
        } catch {
            await release()
            throw error
        }
    }

    private func acquire() async {
        guard running >= limit else {
            running += 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    private func release() {
        // A waiter takes the turn over: `running` stays as it is.
        if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
    }
}
