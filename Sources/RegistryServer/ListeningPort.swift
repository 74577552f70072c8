import Foundation
import ModelRegistryCore

#if canImport(Glibc)
    import Glibc
#endif

/// The address `serve` will listen on, checked before anything touches the data directory: a server that
/// cannot listen must not first create an admin token or take the data directory's lock.
enum ListeningPort {
    /// Refuses a port another process already listens on (an IPv4 host; others are left to the listener).
    static func checkFree(host: String, port: Int) throws {
        guard port != 0 else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return }
        let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard probe >= 0 else { return }
        defer { close(probe) }
        // As the listener will: a port held only by connections in TIME_WAIT is free to it.
        var yes: Int32 = 1
        setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound != 0 else { return }
        let reason =
            errno == EADDRINUSE
            ? "is already in use (another modelreg serve?)"
            : "cannot be listened on (\(String(cString: strerror(errno))))"
        throw RegistryError(.conflict, "port \(port) on \(host) \(reason): stop what holds it, or pass another --port")
    }
}
