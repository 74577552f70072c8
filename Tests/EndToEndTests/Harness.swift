import Foundation
import ModelRegistryCore
import TestServers
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `modelreg` binary under test: beside the test bundle in `.build/<config>/`, or `$MODELREG_BIN`.
let modelregBinary: URL = {
    if let path = ProcessInfo.processInfo.environment["MODELREG_BIN"] { return URL(fileURLWithPath: path) }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    while !directory.path.hasSuffix(".build"), directory.path != "/" {
        let candidate = directory.appendingPathComponent("modelreg")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("modelreg")
}()

/// A scratch directory for one test, removed afterwards.
final class Scratch: @unchecked Sendable {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func url(_ path: String) -> URL { root.appendingPathComponent(path) }
}

struct CommandResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

    func json<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(stdout.utf8))
    }
}

/// Runs the real binary to completion. Output goes through files, so no pipe can fill up and stall it.
func modelreg(_ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil) throws
    -> CommandResult
{
    try CommandProcess(arguments, environment: environment, in: directory).wait()
}

/// The real binary, started and not yet waited for, so that several can run at once.
final class CommandProcess {
    private let process = Process()
    private let outputs = FileManager.default.temporaryDirectory.appendingPathComponent(
        "modelreg-out-\(UUID().uuidString)")

    /// `executable` is the binary unless said otherwise; without `inheritEnvironment` it gets `environment` alone.
    init(
        _ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil,
        executable: URL = modelregBinary,
        inheritEnvironment: Bool = true
    ) throws {
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        let out = outputs.appendingPathComponent("out")
        let err = outputs.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.executableURL = executable
        process.arguments = arguments
        var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        env.removeValue(forKey: "MODELREG_URL")
        env.removeValue(forKey: "MODELREG_TOKEN")
        env.removeValue(forKey: "MODELREG_TOKEN_FILE")
        env.merge(environment) { $1 }
        process.environment = env
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.runAlone()
    }

    var isRunning: Bool { process.isRunning }

    /// Whether it ended by a signal rather than by exiting.
    var wasKilled: Bool { !process.isRunning && process.terminationReason == .uncaughtSignal }

    /// SIGKILL, as the kubelet or an OOM kill would; returns once the process is gone.
    func kill() {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func wait() throws -> CommandResult {
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus,
            stdout: try String(contentsOf: outputs.appendingPathComponent("out"), encoding: .utf8),
            stderr: try String(contentsOf: outputs.appendingPathComponent("err"), encoding: .utf8)
        )
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: outputs)
    }
}

/// A `modelreg serve` process on a free loopback port with its own data directory.
final class ServerProcess: @unchecked Sendable {
    let data: URL
    let process = Process()
    let url: String
    let adminToken: String
    private let log: URL

    /// `arguments` replaces the whole command line (it must listen on 127.0.0.1); `adminToken` is the
    /// token to use when the server does not write `admin.token` (`--admin-token-file`).
    init(
        data: URL, extraArguments: [String] = [], binary: URL = modelregBinary, workingDirectory: URL? = nil,
        arguments: [String]? = nil, adminToken: String? = nil
    ) throws {
        self.data = data
        log = data.deletingLastPathComponent().appendingPathComponent("server-\(UUID().uuidString).log")
        let pipe = Pipe()
        process.executableURL = binary
        process.arguments =
            arguments
            ?? ["serve", "--port", "0", "--log-level", "warning"]
            + (workingDirectory == nil ? ["--data", data.path] : []) + extraArguments
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        process.standardOutput = pipe
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.runAlone()
        url = try Self.awaitListening(pipe.fileHandleForReading, process: process)
        self.adminToken =
            try adminToken
            ?? String(contentsOf: data.appendingPathComponent("admin.token"), encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines)
    }

    /// Reads the server's first line of output, which names the port it bound.
    private static func awaitListening(_ handle: FileHandle, process: Process) throws -> String {
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty {
                throw ServerError(
                    "server exited before listening (status \(process.isRunning ? -1 : process.terminationStatus))")
            }
            text += String(decoding: chunk, as: UTF8.self)
            if let range = text.range(of: #"https?://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                return String(text[range])
            }
        }
        throw ServerError("server did not report its port: \(text)")
    }

    /// What a client needs to reach this server; the hash cache stays inside the test's scratch directory.
    var environment: [String: String] {
        [
            "MODELREG_URL": url, "MODELREG_TOKEN": adminToken,
            "XDG_CACHE_HOME": data.deletingLastPathComponent().appendingPathComponent("cache").path,
        ]
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    deinit { kill() }
}

struct ServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Every regular file under `root` with its bytes and executable bit, for byte-for-byte comparison.
func snapshot(_ root: URL) throws -> [String: (Data, Bool)] {
    var result: [String: (Data, Bool)] = [:]
    for relative in regularFiles(root) {
        let url = root.appendingPathComponent(relative)
        result[relative] = (try Data(contentsOf: url), FileManager.default.isExecutableFile(atPath: url.path))
    }
    return result
}

func expectSameTree(_ a: URL, _ b: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let left = try snapshot(a)
    let right = try snapshot(b)
    #expect(left.keys.sorted() == right.keys.sorted(), sourceLocation: sourceLocation)
    for (path, (bytes, executable)) in left {
        #expect(right[path]?.0 == bytes, "content of \(path)", sourceLocation: sourceLocation)
        #expect(right[path]?.1 == executable, "executable bit of \(path)", sourceLocation: sourceLocation)
    }
}

/// Regular files below a directory, relative paths, sorted. Only listed, not read: a live server may
/// rename or remove files meanwhile.
func regularFiles(_ root: URL) -> [String] {
    let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])
    var files: [String] = []
    while let url = enumerator?.nextObject() as? URL {
        guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
        files.append(String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1)))
    }
    return files.sorted()
}

/// Polls `condition` until it holds; generous timeouts keep a loaded machine from failing a test that works.
func waitUntil(_ what: String, timeout: TimeInterval, interval: useconds_t = 20_000, _ condition: () throws -> Bool)
    throws
{
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return }
        usleep(interval)
    }
    throw ServerError("timed out after \(Int(timeout)) s waiting until \(what)")
}

/// One TCP connection to the server on which the test writes whatever bytes it likes.
final class RawConnection {
    struct Response {
        var head: String
        var body: Data
        /// Whether the server closed the connection (after a response, or instead of one).
        var closed: Bool

        var status: Int? {
            let parts = head.split(separator: " ", maxSplits: 2)
            return parts.count >= 2 && parts[0].hasPrefix("HTTP/") ? Int(parts[1]) : nil
        }

        var text: String { head + String(decoding: body, as: UTF8.self) }

        func header(_ name: String) -> String? {
            head.split(separator: "\r\n").dropFirst().first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
        }
    }

    private let descriptor: Int32
    private(set) var isOpen = true

    /// - Parameter receiveBuffer: a small socket receive buffer makes a slow reader's backpressure reach the
    ///   server at once instead of after megabytes.
    init(_ url: String, receiveBuffer: Int32? = nil) throws {
        let port = try #require(url.split(separator: ":").last.flatMap { UInt16($0) }, "no port in \(url)")
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        if var size = receiveBuffer {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            throw ServerError("cannot connect to \(url): \(String(cString: strerror(errno)))")
        }
    }

    deinit { close() }

    func close() {
        if isOpen { Glibc.close(descriptor) }
        isOpen = false
    }

    /// Writes all of `bytes`; false once the server has closed or reset the connection. MSG_NOSIGNAL keeps a
    /// closed connection from raising SIGPIPE in the test process.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }

    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    /// Sends a request and reads its response: until the body has `Content-Length` bytes, the server closes
    /// the connection, or 30 s pass.
    func exchange(_ request: String) throws -> Response { try exchange(Array(request.utf8)) }

    func exchange(_ request: [UInt8]) throws -> Response {
        // The server may answer and close before it has read a long request: what it sent still counts.
        send(request)
        var received = [UInt8]()
        var closed = false
        let deadline = Date().addingTimeInterval(30)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while Date() < deadline {
            guard wait(for: POLLIN, milliseconds: 500) else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count <= 0 {
                closed = true
                break
            }
            received += buffer[..<count]
            let response = Self.parse(received, closed: false)
            if let length = response.header("Content-Length").flatMap({ Int($0) }), response.body.count >= length {
                return response
            }
        }
        return Self.parse(received, closed: closed)
    }

    /// Reads what has arrived, at most `limit` bytes, waiting up to 30 s for some; empty once the server
    /// has closed the connection.
    func receive(upTo limit: Int) -> [UInt8] {
        guard wait(for: POLLIN, milliseconds: 30_000) else { return [] }
        var buffer = [UInt8](repeating: 0, count: limit)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer[..<count]) : []
    }

    /// The head and body of a response read with `receive`.
    static func parse(_ received: [UInt8]) -> Response { parse(received, closed: true) }

    private static func parse(_ received: [UInt8], closed: Bool) -> Response {
        let separator = Array("\r\n\r\n".utf8)
        let end = received.indices.first { received[$0...].starts(with: separator) }
        let head =
            end.map { String(decoding: received[..<$0], as: UTF8.self) } ?? String(decoding: received, as: UTF8.self)
        let body = end.map { Data(received[($0 + 4)...]) } ?? Data()
        return Response(head: head, body: body, closed: closed)
    }

    /// Whether the server has closed or reset this connection: readable with nothing (or an error) to read.
    var closedByPeer: Bool {
        guard isOpen else { return true }
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        // An error response may come before the close: read it off and look again.
        while wait(for: POLLIN, milliseconds: 0) {
            let count = buffer.withUnsafeMutableBytes {
                recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT))
            }
            if count <= 0 { return true }
        }
        return false
    }

    private func wait(for events: Int32, milliseconds: Int32) -> Bool {
        var entry = pollfd(fd: descriptor, events: Int16(events), revents: 0)
        return poll(&entry, 1, milliseconds) > 0
    }
}
