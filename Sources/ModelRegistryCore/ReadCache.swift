import Synchronization

/// Answers read from the database, kept until what they read changes. An answer is tagged with the store's
/// change count for it (`changeCount`, or `changeCount(of:)` for one model's), taken before the read, and
/// served only while that count has not moved, so a read that raced a write never serves its older answer.
/// `limit` bounds the total cost of what is kept: once full, the cache empties before the next insert, so
/// requests for ever new keys (invalid tokens, odd paths) cannot grow it.
public final class ReadCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        let value: Value
        let changeCount: Int
        let cost: Int
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var cost = 0
    }

    private let state = Mutex(State())
    private let limit: Int

    public init(limit: Int) {
        self.limit = limit
    }

    /// The answer kept for `key`, if it was read at `changeCount`.
    public func value(for key: Key, at changeCount: Int) -> Value? {
        state.withLock { state in
            guard let entry = state.entries[key], entry.changeCount == changeCount else { return nil }
            return entry.value
        }
    }

    /// Keeps an answer read after the store's change count for it was `changeCount`.
    public func insert(_ value: Value, for key: Key, cost: Int = 1, readAt changeCount: Int) {
        state.withLock { state in
            guard cost <= limit else { return }
            if let kept = state.entries[key] {
                guard kept.changeCount < changeCount else { return }
                state.cost -= kept.cost
            }
            if state.cost + cost > limit { state = State() }
            state.entries[key] = Entry(value: value, changeCount: changeCount, cost: cost)
            state.cost += cost
        }
    }

    /// The answer kept for `key` at `changeCount`, else what `read` reads, kept for the next ask.
    public func value(
        for key: Key, at changeCount: Int, cost: (Value) -> Int, reading read: () async throws -> Value
    ) async rethrows -> Value {
        if let kept = value(for: key, at: changeCount) { return kept }
        let value = try await read()
        insert(value, for: key, cost: cost(value), readAt: changeCount)
        return value
    }
}
