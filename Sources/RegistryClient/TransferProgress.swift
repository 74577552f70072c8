import Foundation
import ModelRegistryCore
import Synchronization

/// How progress is shown: redrawn bars on a terminal, a plain line now and then in logs (an init container
/// has no terminal), or nothing.
public enum ProgressStyle: Sendable, Equatable {
    case bars
    case lines(every: Duration)
    case none
}

/// Bytes moved by the files of one phase (hashing, uploading, downloading), drawn on standard error.
///
/// Transfers report what they move; a ticker draws the state at a steady pace, so drawing never slows a
/// transfer down, however small its chunks.
public final class TransferProgress: Sendable {
    private struct FileState {
        var name: String
        var size: Int64
        var done: Int64
    }

    private struct State {
        var total: Int64 = 0
        var done: Int64 = 0
        var files: [Int: FileState] = [:]
        var nextFile = 0
        var finishedFiles = 0
        var fileCount = 0
        var linesDrawn = 0
        var started = ContinuousClock.now
    }

    public let style: ProgressStyle
    let verb: String
    private let state = Mutex(State())
    private let write: @Sendable (String) -> Void

    /// `verb` names the phase in every line ("pushing", "pulling", "hashing").
    public init(style: ProgressStyle, verb: String, write: @escaping @Sendable (String) -> Void) {
        self.style = style
        self.verb = verb
        self.write = write
    }

    /// Declares the work: `total` bytes in `files` files.
    func begin(total: Int64, files: Int) {
        state.withLock {
            $0.total = total
            $0.fileCount = files
            $0.started = .now
        }
    }

    /// A file starts (or resumes at `offset`); the token names it in later calls.
    func startFile(_ name: String, size: Int64, at offset: Int64 = 0) -> Int {
        state.withLock { state in
            let token = state.nextFile
            state.nextFile += 1
            state.files[token] = FileState(name: name, size: size, done: offset)
            state.done += offset
            return token
        }
    }

    func advance(_ token: Int, by count: Int64) {
        state.withLock { state in
            state.files[token]?.done += count
            state.done += count
        }
    }

    /// The file's transfer restarts at `offset` (a dropped connection, resumed where the other side was).
    func rewind(_ token: Int, to offset: Int64) {
        state.withLock { state in
            guard let done = state.files[token]?.done else { return }
            state.done += offset - done
            state.files[token]?.done = offset
        }
    }

    /// The file will not be finished by this token after all (its kept bytes did not add up): what it
    /// counted is taken back, and the file is counted again by whatever moves it next.
    func dropFile(_ token: Int) {
        state.withLock { state in
            if let file = state.files.removeValue(forKey: token) { state.done -= file.done }
        }
    }

    /// A retried attempt counts again from what is on disk: nothing is done yet, the total stays.
    func restart() {
        state.withLock { state in
            state.done = 0
            state.files = [:]
            state.finishedFiles = 0
        }
    }

    /// Counts a whole file as done without moving its bytes (already stored, already hashed).
    func skip(size: Int64) {
        state.withLock { state in
            state.done += size
            state.finishedFiles += 1
        }
    }

    func finishFile(_ token: Int, message: String? = nil) {
        let drawn: String? = state.withLock { state in
            if let file = state.files.removeValue(forKey: token) { state.done += file.size - file.done }
            state.finishedFiles += 1
            guard let message, style != .none else { return nil }
            return clearing(&state) + message + "\n"
        }
        if let drawn { write(drawn) }
    }

    /// A line of the log (a retry, a resumed file), written above the bars so they stay whole.
    func note(_ line: String) {
        guard style != .none else { return }
        let text = state.withLock { clearing(&$0) } + line + "\n"
        write(text)
    }

    /// Draws the current state every tick until the task is cancelled; the last state stays on screen.
    func run() async {
        let pause: Duration
        switch style {
        case .none: return
        case .bars: pause = .milliseconds(200)
        case .lines(let every): pause = every
        }
        while !Task.isCancelled {
            try? await Task.sleep(for: pause)
            if Task.isCancelled { break }
            draw()
        }
    }

    /// Runs `body` with the ticker drawing beside it (once at the start, so even a short transfer shows
    /// what it is about to move), and clears the bars when it is done.
    func reporting<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        if state.withLock({ $0.total > 0 }) { draw() }
        let ticker = Task { await run() }
        defer {
            ticker.cancel()
            let cleared = state.withLock { clearing(&$0) }
            if !cleared.isEmpty { write(cleared) }
        }
        return try await body()
    }

    private func draw() {
        let text: String = state.withLock { state in
            let elapsed = (ContinuousClock.now - state.started).seconds
            let rate = elapsed > 0 ? Double(state.done) / elapsed : 0
            let summary =
                Self.summary(verb: verb, done: state.done, total: state.total, rate: rate)
                + ", \(state.finishedFiles)/\(state.fileCount) files"
            switch style {
            case .none:
                return ""
            case .lines:
                return summary + "\n"
            case .bars:
                var lines = state.files.sorted { $0.key < $1.key }.map { _, file in
                    Self.bar(file.name, done: file.done, total: file.size, width: 24)
                }
                lines.append(summary)
                let text = clearing(&state) + lines.map { "\u{1B}[2K" + $0 }.joined(separator: "\n")
                state.linesDrawn = lines.count
                return text
            }
        }
        if !text.isEmpty { write(text) }
    }

    /// What erases the bars last drawn, leaving the cursor at the start of their first line.
    private func clearing(_ state: inout State) -> String {
        guard style == .bars, state.linesDrawn > 0 else { return "" }
        var text = "\r\u{1B}[2K"
        for _ in 1..<state.linesDrawn { text += "\u{1B}[1A\u{1B}[2K" }
        state.linesDrawn = 0
        return text
    }

    static func summary(verb: String, done: Int64, total: Int64, rate: Double) -> String {
        let percent = total > 0 ? Int(Double(done) * 100 / Double(total)) : 100
        var text =
            "\(verb) \(percent)% \(ByteCount.format(done)) of \(ByteCount.format(total)), \(ByteCount.format(Int64(rate)))/s"
        if rate > 0, done < total { text += ", ETA \(Self.duration(Double(total - done) / rate))" }
        return text
    }

    static func bar(_ name: String, done: Int64, total: Int64, width: Int) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let filled = Int(fraction * Double(width))
        let shown = name.count > 40 ? "…" + name.suffix(39) : name
        return "[\(String(repeating: "#", count: filled))\(String(repeating: "-", count: width - filled))] "
            + "\(Int(fraction * 100))% \(ByteCount.format(done))/\(ByteCount.format(total)) \(shown)"
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(String(format: "%02d", whole % 60))s" }
        return "\(whole / 3600)h\(String(format: "%02d", whole / 60 % 60))m"
    }
}
