import Synchronization

/// Active tokens recently seen, by hash, so that authenticating a request costs no database read. Every
/// token change goes through the store that owns this cache, which empties it after the change commits;
/// the generation keeps a lookup that read the database before such a change from caching its old answer.
/// Only tokens that exist are kept, and at most `capacity` of them, so invalid tokens cannot grow it.
final class TokenCache: Sendable {
    private struct State {
        var generation = 0
        var records: [String: TokenRecord] = [:]
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    /// The cached record and the generation to pass to `insert` after reading the database.
    func lookup(_ hash: String) -> (record: TokenRecord?, generation: Int) {
        state.withLock { ($0.records[hash], $0.generation) }
    }

    func insert(_ record: TokenRecord, for hash: String, readAt generation: Int) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.records.count >= capacity { state.records.removeAll() }
            state.records[hash] = record
        }
    }

    /// Forgets everything; called after any token change commits.
    func invalidate() {
        state.withLock { state in
            state.generation += 1
            state.records.removeAll()
        }
    }
}
