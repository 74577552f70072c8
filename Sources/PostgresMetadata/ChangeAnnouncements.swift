import Synchronization

/// Token changes counted while a connection listens for them: nil while none does. Counts only grow, across
/// reconnections too, so a count is never handed out twice.
final class TokenChangeCount: Sendable {
    private struct State {
        var count = 0
        var isListening = false
    }
    private let state = Mutex(State())

    var current: Int? { state.withLock { $0.isListening ? $0.count : nil } }

    func listening() {
        state.withLock {
            $0.count += 1
            $0.isListening = true
        }
    }

    func changed() { state.withLock { $0.count += 1 } }

    func stopped() { state.withLock { $0.isListening = false } }
}

/// The models' change counts as the database last announced them (or as read or written here), kept while a
/// connection listens for the announcements: a model not heard of yet has none, and neither has any model while
/// nobody listens (announcements may be missed then). Counts only grow: an announcement that arrives after a
/// later count was read never brings back the older one.
final class ModelChangeCounts: Sendable {
    private struct State {
        var counts: [String: Int] = [:]
        /// Moves each time listening starts or everything is forgotten, so a count read before then is not kept.
        var epoch = 0
        var isListening = false
    }
    private let state = Mutex(State())

    /// The current listening period, nil while nobody listens: pass it to `read` with a count read after it.
    var epoch: Int? { state.withLock { $0.isListening ? $0.epoch : nil } }

    func count(of model: String) -> Int? { state.withLock { $0.isListening ? $0.counts[model] : nil } }

    /// Keeps a count read from (or written to) the model's row since `epoch` began, unless a later one is known.
    func read(_ count: Int, of model: String, inEpoch epoch: Int?) {
        state.withLock { state in
            guard state.isListening, epoch == state.epoch else { return }
            state.counts[model] = max(state.counts[model] ?? count, count)
        }
    }

    /// An announcement on `modelreg_models`: "<count> <name>", or empty when every count is void (a TRUNCATE).
    func heard(_ payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1)
        state.withLock { state in
            guard parts.count == 2, let count = Int(parts[0]) else {
                state.counts.removeAll()
                state.epoch += 1
                return
            }
            let model = String(parts[1])
            state.counts[model] = max(state.counts[model] ?? count, count)
        }
    }

    func listening() {
        state.withLock {
            $0.counts.removeAll()
            $0.epoch += 1
            $0.isListening = true
        }
    }

    func stopped() {
        state.withLock {
            $0.counts.removeAll()
            $0.isListening = false
        }
    }
}

/// The change counts a write transaction gave the models it locked (`lockModel`), kept once it commits.
final class WrittenModelCounts: Sendable {
    @TaskLocal static var current: WrittenModelCounts?

    private let state = Mutex<[String: Int]>([:])

    var counts: [String: Int] { state.withLock { $0 } }

    func note(_ count: Int, of model: String) { state.withLock { $0[model] = max($0[model] ?? count, count) } }
}
