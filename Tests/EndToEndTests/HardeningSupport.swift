import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Runs a shell command to completion; its standard output and error together.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command + " 2>&1"]
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-shell-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: output.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: output) }
    process.standardOutput = try FileHandle(forWritingTo: output)
    try process.run()
    process.waitUntilExit()
    return (process.terminationStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
}

/// A tmpfs of a fixed size mounted on a directory: a disk that fills up for real, in milliseconds.
final class TmpfsMount {
    let directory: URL
    private var mounted = true

    init(at directory: URL, size: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let result = try shell("mount -t tmpfs -o size=\(size),mode=0755 tmpfs '\(directory.path)'")
        guard result.status == 0 else { throw ServerError("mount -t tmpfs failed: \(result.output)") }
        self.directory = directory
    }

    /// Whether a tmpfs can be mounted here: root, and a mount(8) the container permits. Probed once.
    static let available: Bool = {
        guard geteuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-tmpfs-probe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: probe) }
        guard let mount = try? TmpfsMount(at: probe, size: "64k") else { return false }
        mount.unmount()
        return true
    }()

    func unmount() {
        guard mounted else { return }
        mounted = false
        _ = try? shell("umount '\(directory.path)'")
    }

    deinit { unmount() }
}

/// Writes zeros into a file until the file system is full; returns the bytes written.
func fillDisk(_ file: URL) throws -> Int64 {
    let fd = open(file.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw ServerError("cannot create \(file.path)") }
    defer { close(fd) }
    let chunk = [UInt8](repeating: 0, count: 4096)
    var written: Int64 = 0
    while true {
        let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        if n <= 0 {
            guard errno == ENOSPC else { throw ServerError("filling \(file.path) failed: errno \(errno)") }
            return written
        }
        written += Int64(n)
    }
}

/// One raw HTTP/1.1 connection to a loopback port, for requests whose body arrives slowly.
final class RawConnection {
    private let socket: Int32

    init(port: Int) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard socket >= 0, connected == 0 else { throw ServerError("cannot connect to port \(port): errno \(errno)") }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ServerError("send failed: errno \(errno)") }
            done += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Everything the server sends until it closes the connection (or 30 s pass).
    func receiveAll() -> String {
        var received = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }

    deinit { close(socket) }
}

extension ServerProcess {
    var port: Int { URL(string: url)?.port ?? 0 }

    /// Sends SIGTERM, as the kubelet does, without waiting.
    func terminate() { process.terminate() }

    /// Waits for the process to end, at most `timeout`; its exit status, or nil if it is still running.
    func waitForExit(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }
}

/// A plain HTTP GET with curl: its status code, or 0 when no answer came.
func httpStatus(_ url: String, headers: [String] = []) throws -> Int {
    let flags = headers.map { "-H '\($0)'" }.joined(separator: " ")
    let result = try shell("curl -s -o /dev/null -w '%{http_code}' --max-time 10 \(flags) '\(url)'")
    return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}
