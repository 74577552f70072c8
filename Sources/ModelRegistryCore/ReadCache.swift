import Synchronization

/// Answers read from the database, kept until the database changes. An answer is tagged with the store's
/// `changeCount` taken before the read, and served only while the count has not moved, so a read that raced
/// a write never caches its older answer. `limit` bounds the total cost of what is kept: once full, the cache
/// empties before the next insert, so requests for ever new keys (invalid tokens, odd paths) cannot grow it.
public final class ReadCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct State {
        var changeCount = 0
        var entries: [Key: Value] = [:]
        var cost = 0
    }

    private let state = Mutex(State())
    private let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    /// The answer kept for `key`, if it was read at `changeCount`.
    public func value(for key: Key, at changeCount: Int) -> Value? {
        state.withLock { $0.changeCount == changeCount ? $0.entries[key] : nil }
    }

    /// Keeps an answer read after the store's change count was `changeCount`.
    public func insert(_ value: Value, for key: Key, cost: Int = 1, readAt changeCount: Int) {
        state.withLock { state in
            if changeCount > state.changeCount { state = State(changeCount: changeCount) }
            guard changeCount == state.changeCount, cost <= limit, state.entries[key] == nil else { return }
            if state.cost + cost > limit { state = State(changeCount: changeCount) }
            state.entries[key] = value
            state.cost += cost
        }
    }
}
