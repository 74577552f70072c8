import Synchronization

/// A point in time after which a command gives up, however far its work got.
///
/// `run` answers at the deadline even when the work does not: the work's task is cancelled, but a transfer
/// blocked in a read, or an extraction thread in a write, may take a while to notice, and a command's
/// `--timeout` is a promise to the caller (an init container, a script), not a hint.
struct Deadline: Sendable {
    let instant: ContinuousClock.Instant

    init(_ instant: ContinuousClock.Instant) { self.instant = instant }

    /// The result of `body`, or `expired()` thrown once the deadline passes.
    func run<T: Sendable>(
        expired: @escaping @Sendable () -> any Error, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let race = Race<T>()
        return try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            let work = Task {
                do {
                    race.finish(.success(try await body()))
                } catch {
                    race.finish(.failure(error))
                }
            }
            race.timer(
                Task { [instant] in
                    guard (try? await Task.sleep(until: instant, clock: .continuous)) != nil else { return }
                    // Answer first: the cancelled work may otherwise finish first with its CancellationError.
                    race.finish(.failure(expired()))
                    work.cancel()
                })
        }
    }

    /// Whichever of the work and the timer ends first resumes the caller; the other is then ignored.
    private final class Race<T: Sendable>: Sendable {
        private struct State: ~Copyable {
            var continuation: CheckedContinuation<T, any Error>?
            var timer: Task<Void, Never>?
            var done = false
        }

        private let state = Mutex(State())

        func start(_ continuation: CheckedContinuation<T, any Error>) {
            state.withLock { $0.continuation = continuation }
        }

        func timer(_ task: Task<Void, Never>) {
            let finished = state.withLock { state in
                state.timer = task
                return state.done
            }
            if finished { task.cancel() }
        }

        func finish(_ result: Result<T, any Error>) {
            let (continuation, timer) = state.withLock { state in
                defer { (state.continuation, state.timer, state.done) = (nil, nil, true) }
                return (state.continuation, state.timer)
            }
            timer?.cancel()
            continuation?.resume(with: result)
        }
    }
}
