import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A socket listening on a free loopback port, and the connections a test server accepted on it, so that
/// `close()` can end them all (the peer sees them drop).
public final class LoopbackListener: @unchecked Sendable {
    public let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var sockets: [Int32] = []
    private var closed = false

    public init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard listener >= 0, bound == 0, listen(listener, 64) == 0 else {
            throw MotoServer.Failure("cannot listen on the loopback: \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        self.listener = listener
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    public var isClosed: Bool { lock.withLock { closed } }

    /// The next connection, nil once closed.
    public func accept() -> Int32? {
        let client = Glibc.accept(listener, nil, nil)
        return client >= 0 ? client : nil
    }

    /// Keeps `sockets` to end with the listener; false (and nothing kept) when it is closed already.
    public func track(_ new: [Int32]) -> Bool {
        lock.withLock {
            guard !closed else { return false }
            sockets += new
            return true
        }
    }

    /// Closes connections whose threads are done with them, and stops tracking them: under the lock, so
    /// `close()` never shuts down a number another socket of the test process took since. (Left open, a
    /// relay's connections piled up in the test process by the thousand.)
    public func release(_ done: [Int32]) {
        lock.withLock {
            sockets.removeAll { done.contains($0) }
            for socket in done { Glibc.close(socket) }
        }
    }

    /// Stops listening and shuts every tracked connection down (their threads close them as they end, through
    /// `release`).
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            shutdown(listener, Int32(SHUT_RDWR))
            for socket in sockets { shutdown(socket, Int32(SHUT_RDWR)) }
        }
    }

    public static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
