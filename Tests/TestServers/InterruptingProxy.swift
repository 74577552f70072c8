import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP relay on a free loopback port in front of a server, which interrupts the first connection that
/// carries `limit` bytes in one direction: it cuts the connection (a dropped connection) or stops
/// forwarding (a transfer frozen mid-file, so the test can kill a client at a known point, with no timing).
/// Later connections are relayed untouched. What clients send is kept (its first MiB, from the last `arm()`),
/// for tests of what reached the server.
public final class InterruptingProxy: @unchecked Sendable {
    public enum Direction { case toServer, toClient }
    public enum Action { case cut, stall }

    private let listener: LoopbackListener
    private let target: Int
    private let direction: Direction
    private let limit: Int
    private let action: Action
    private let lock = NSLock()
    private var armed: Bool
    private var fired = false
    private var sent: [UInt8] = []

    /// Unless `armed`, it relays everything until `arm()`.
    public init(to server: String, direction: Direction, after limit: Int, action: Action, armed: Bool = true) throws {
        self.armed = armed
        guard let targetPort = URL(string: server)?.port else { throw MotoServer.Failure("no port in \(server)") }
        target = targetPort
        self.direction = direction
        self.limit = limit
        self.action = action
        listener = try LoopbackListener()
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    public var port: Int { listener.port }
    public var url: String { listener.url }

    /// Interrupts the next connection that reaches the limit, and keeps what clients send from now on.
    public func arm() {
        lock.withLock {
            armed = true
            sent = []
        }
    }

    /// The bytes clients sent to the server so far (the first MiB), as text.
    public var sentToServer: String { lock.withLock { String(decoding: sent, as: UTF8.self) } }

    /// True once a connection has been interrupted.
    public var interrupted: Bool { lock.withLock { fired } }

    /// Stops listening and closes every relayed connection (the server sees them drop).
    public func close() { listener.close() }

    deinit { close() }

    private func acceptLoop() {
        while true {
            guard let client = listener.accept() else { return }
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = LoopbackListener.loopback(port: target)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0, listener.track([client, server]) else {
                Glibc.close(client)
                Glibc.close(server)
                continue
            }
            // The second of the two pumps to end closes both sockets.
            let ends = PumpEnds()
            Thread.detachNewThread { [self] in
                pump(from: client, to: server, watched: direction == .toServer, fromClient: true)
                if ends.last() { listener.release([client, server]) }
            }
            Thread.detachNewThread { [self] in
                pump(from: server, to: client, watched: direction == .toClient, fromClient: false)
                if ends.last() { listener.release([client, server]) }
            }
        }
    }

    /// Copies bytes one way until either side closes; on the watched side, interrupts at the limit.
    private func pump(from source: Int32, to sink: Int32, watched: Bool, fromClient: Bool) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var carried = 0
        var interrupting = false
        while true {
            var wanted = buffer.count
            if watched, !interrupting {
                interrupting = lock.withLock { armed } && carried + wanted >= limit
                // A connection armed after it carried more than the limit is interrupted at once: never a
                // negative count, which read(2) would take for a huge one and overrun the buffer with.
                if interrupting { wanted = max(0, limit - carried) }
            }
            let count = wanted == 0 ? 0 : read(source, &buffer, wanted)
            if count <= 0, wanted > 0 { break }
            if count > 0, fromClient {
                lock.withLock { sent += buffer[..<min(count, max(0, (1 << 20) - sent.count))] }
            }
            if count > 0, !writeAll(sink, buffer, count) { break }
            carried += count
            if interrupting, carried >= limit {
                guard
                    lock.withLock({ () -> Bool in
                        defer { armed = false }
                        fired = fired || armed
                        return armed
                    })
                else {
                    interrupting = false
                    continue
                }
                if action == .cut { break }
                // Frozen: hold both sockets open, sending nothing, until the test closes the proxy.
                while !listener.isClosed { usleep(10_000) }
                break
            }
        }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(sink, Int32(SHUT_RDWR))
    }

    private func writeAll(_ socket: Int32, _ buffer: [UInt8], _ count: Int) -> Bool {
        var written = 0
        while written < count {
            let n = buffer.withUnsafeBytes {
                send(socket, $0.baseAddress! + written, count - written, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return false }
            written += n
        }
        return true
    }
}

/// How many of a connection's two pumps have ended.
private final class PumpEnds: Sendable {
    private let ended = Mutex(0)

    /// True for the second pump to end.
    func last() -> Bool {
        ended.withLock { ended in
            ended += 1
            return ended == 2
        }
    }
}
