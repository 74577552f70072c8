import Foundation
import ModelRegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// An flock on a lock file, released by `unlock()` or when the process ends, however it ends. An exclusive
/// holder writes its pid and start time into the file, so that whoever is refused can tell who holds it.
public final class FileLock: Sendable {
    private let descriptor: Int32

    /// Takes the lock without waiting; when another process holds it, throws `inUse` with the holder's line.
    public init(path: String, exclusive: Bool, inUse: (_ holder: String) -> RegistryError) throws(RegistryError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RegistryError(
                .storageFailure, "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 else {
            let holder =
                (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
                ?? ""
            close(fd)
            throw inUse(holder)
        }
        descriptor = fd
        if exclusive {
            let text = Array("pid \(getpid()) since \(Timestamp.now())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
    }

    public func unlock() {
        close(descriptor)
    }
}
