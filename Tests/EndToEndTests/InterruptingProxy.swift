import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on a free loopback port in front of a server, which interrupts the first connection that
/// carries `limit` bytes in one direction: it cuts the connection (a dropped connection) or stops
/// forwarding (a transfer frozen mid-file, so the test can kill a client at a known point, with no timing).
/// Later connections are relayed untouched.
final class InterruptingProxy: @unchecked Sendable {
    enum Direction { case toServer, toClient }
    enum Action { case cut, stall }

    let port: Int
    private let listener: Int32
    private let target: Int
    private let direction: Direction
    private let limit: Int
    private let action: Action
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var armed = true
    private var closed = false

    init(to server: String, direction: Direction, after limit: Int, action: Action) throws {
        guard let targetPort = URL(string: server)?.port else { throw ServerError("no port in \(server)") }
        target = targetPort
        self.direction = direction
        self.limit = limit
        self.action = action
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard listener >= 0, bound == 0, listen(listener, 64) == 0 else { throw ServerError("proxy cannot listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// True once a connection has been interrupted.
    var interrupted: Bool { lock.withLock { !armed } }

    /// Stops listening and closes every relayed connection (the server sees them drop).
    func close() {
        let open: [Int32]? = lock.withLock {
            guard !closed else { return nil }
            closed = true
            return sockets
        }
        guard let open else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        // Relayed sockets are shut down, never closed: a closed number could be reused by another socket of
        // the test process while a relay thread still holds it.
        for socket in open { shutdown(socket, Int32(SHUT_RDWR)) }
    }

    deinit { close() }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = Self.loopback(port: target)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            let accepted: Bool = lock.withLock {
                guard !closed, connected == 0 else { return false }
                sockets += [client, server]
                return true
            }
            guard accepted else {
                Glibc.close(client)
                Glibc.close(server)
                continue
            }
            Thread.detachNewThread { [self] in pump(from: client, to: server, watched: direction == .toServer) }
            Thread.detachNewThread { [self] in pump(from: server, to: client, watched: direction == .toClient) }
        }
    }

    /// Copies bytes one way until either side closes; on the watched side, interrupts at the limit.
    private func pump(from source: Int32, to sink: Int32, watched: Bool) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var carried = 0
        var interrupting = false
        while true {
            var wanted = buffer.count
            if watched, !interrupting {
                interrupting = lock.withLock { armed } && carried + wanted >= limit
                if interrupting { wanted = limit - carried }
            }
            let count = wanted == 0 ? 0 : read(source, &buffer, wanted)
            if count <= 0, wanted > 0 { break }
            if count > 0, !writeAll(sink, buffer, count) { break }
            carried += count
            if interrupting, carried >= limit {
                guard lock.withLock({ () -> Bool in
                    defer { armed = false }
                    return armed
                }) else {
                    interrupting = false
                    continue
                }
                if action == .cut { break }
                // Frozen: hold both sockets open, sending nothing, until the test closes the proxy.
                while !lock.withLock({ closed }) { usleep(10_000) }
                break
            }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(sink, Int32(SHUT_RDWR))
    }

    private func writeAll(_ socket: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var written = 0
        while written < count {
            let n = buffer.withUnsafeBytes { send(socket, $0.baseAddress! + written, count - written, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            written += n
        }
        return true
    }
}
