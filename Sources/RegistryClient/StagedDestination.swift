import FileSystemIO
import Foundation
import ModelRegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A destination directory that `pull` and `fetch` stage their downloads inside of.
///
/// In a pod the destination is usually a volume's mount point (an `emptyDir` at `/models`) under a
/// read-only root: nothing can be created beside it and it cannot be renamed over. So the download goes into
/// a hidden staging directory inside the destination, and only once every file verified are the staging
/// directory's entries renamed, one by one, into the destination (the same file system, so no byte is
/// copied). The destination itself is never renamed or removed.
///
/// The commit is resumable: the destination's old entries are removed first, then a flag is written into
/// the staging directory, then the new entries are moved. A run killed at any point finds the staging
/// directory again: without the flag nothing old is lost yet, with it the old entries are gone and the rest
/// of the new ones is moved. Every name this tool keeps in a destination starts with `reservedPrefix`, and
/// the caller's own commit point (fetch's marker) is written last.
struct StagedDestination: Sendable {
    /// The names of this tool's own files in a destination. No model file may start with it.
    static let reservedPrefix = ManifestPath.reservedPrefix
    static let stagingPrefix = ".modelreg-staging-"
    static let committingName = ".modelreg-committing"

    let destination: URL
    let staging: URL

    /// `run` names the download (its digest and layout), so a rerun of the same one finds its staging directory.
    init(_ destination: URL, run: String) {
        self.destination = destination
        staging = destination.appendingPathComponent(Self.stagingPrefix + run)
    }

    static func isReserved(_ name: String) -> Bool { name.hasPrefix(reservedPrefix) }

    /// What the destination holds: nil when it does not exist, refused when it is not a directory.
    func contents() throws -> [String]? {
        var status = stat()
        guard stat(destination.path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw POSIXFile.error("read", destination.path)
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw RegistryError(.conflict, "\(destination.path) exists and is not a directory: choose another --dest")
        }
        return try LocalFileError.mapping("list", destination.path) {
            try FileManager.default.contentsOfDirectory(atPath: destination.path)
        }
    }

    /// The entries that are not this tool's own.
    func foreignEntries() throws -> [String] {
        try (contents() ?? []).filter { !Self.isReserved($0) }.sorted()
    }

    /// Whether a run was killed while it moved its files in: the destination then holds part of them.
    func hasCommitInProgress() throws -> Bool {
        try (contents() ?? []).contains { name in
            name.hasPrefix(Self.stagingPrefix)
                && FileManager.default.fileExists(
                    atPath: destination.appendingPathComponent(name).appendingPathComponent(Self.committingName).path)
        }
    }

    /// Refuses a destination holding files of somebody else's unless `replace` (or `earlierRun`, when the
    /// caller recognised an earlier download of its own there).
    func checkReplaceable(replace: Bool, earlierRun: Bool, command: String) throws {
        let foreign = try foreignEntries()
        guard !foreign.isEmpty, !replace, !earlierRun, try !hasCommitInProgress() else { return }
        let shown = foreign.prefix(3).joined(separator: ", ") + (foreign.count > 3 ? ", …" : "")
        throw RegistryError(
            .conflict,
            "\(destination.path) is not empty (\(shown)) and holds no earlier \(command): choose another --dest, or pass --force to replace what it holds"
        )
    }

    /// Creates the destination if it is missing and the staging directory in it, and drops the staging
    /// directories of other downloads (an alias that moved since a run was killed). Returns whether it
    /// created the destination, for `abandon`.
    @discardableResult func prepare() throws -> Bool {
        let existed = try contents() != nil
        try LocalFileError.mapping("create", destination.path) {
            try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        }
        removeStaging(except: staging.lastPathComponent)
        try LocalFileError.mapping("create", staging.path) {
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        }
        return !existed
    }

    /// Gives up a download that cannot succeed (wrong bytes, a refused request): its staging directory
    /// goes, and so does the destination if `prepare` created it, leaving the file system as it was.
    func abandon(createdDestination: Bool) {
        try? FileManager.default.removeItem(at: staging)
        if createdDestination { _ = rmdir(destination.path) }
    }

    /// Removes every staging directory but `kept`.
    func removeStaging(except kept: String? = nil) {
        for name in (try? contents()) ?? [] where name.hasPrefix(Self.stagingPrefix) && name != kept {
            try? FileManager.default.removeItem(at: destination.appendingPathComponent(name))
        }
    }

    /// Replaces the destination's entries by the staging directory's (all but this tool's own files), then
    /// writes `commitPoint` (a file name and its bytes) if given, and removes the staging directory.
    func commit(commitPoint: (name: String, bytes: Data)? = nil) throws {
        let fileManager = FileManager.default
        let flag = staging.appendingPathComponent(Self.committingName).path
        if !fileManager.fileExists(atPath: flag) {
            // The commit point goes first: from here on the destination no longer holds a whole model.
            if let commitPoint { try POSIXFile.remove(destination.appendingPathComponent(commitPoint.name).path) }
            try POSIXFile.syncDirectory(destination.path)
            for name in try contents() ?? [] where name != staging.lastPathComponent {
                try LocalFileError.mapping("remove", destination.appendingPathComponent(name).path) {
                    try fileManager.removeItem(at: destination.appendingPathComponent(name))
                }
            }
            try POSIXFile.syncDirectory(destination.path)
            try POSIXFile.create(flag) { _ throws(RegistryError) in }
            try POSIXFile.syncDirectory(staging.path)
        }
        let entries = try LocalFileError.mapping("list", staging.path) {
            try fileManager.contentsOfDirectory(atPath: staging.path)
        }
        for name in entries where !Self.isReserved(name) {
            try POSIXFile.rename(
                staging.appendingPathComponent(name).path, to: destination.appendingPathComponent(name).path)
        }
        try POSIXFile.syncDirectory(destination.path)
        if let commitPoint {
            let temporary = destination.appendingPathComponent(Self.reservedPrefix + "commit-point.tmp").path
            let file = try POSIXFile.open(temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o644)
            defer { try? file.close() }
            try Array(commitPoint.bytes).withUnsafeBytes { try file.write($0, at: 0) }
            try file.sync()
            try POSIXFile.rename(temporary, to: destination.appendingPathComponent(commitPoint.name).path)
        }
        try? fileManager.removeItem(at: staging)
        try POSIXFile.syncDirectory(destination.path)
    }
}

/// Local file-system failures as one line naming the path and the cause, instead of Foundation's dump.
enum LocalFileError {
    /// Runs a Foundation file operation and turns its error into `POSIXFile.error`'s line.
    static func mapping<T>(_ operation: String, _ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as RegistryError {
            throw error
        } catch let error as CocoaError {
            let underlying = (error.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap {
                $0.domain == NSPOSIXErrorDomain ? Int32($0.code) : nil
            }
            let code = underlying ?? Self.posixCode(error.code)
            // Foundation names the ancestor that could not be made; the user named `path`.
            let failedPath =
                (error.userInfo[NSFilePathErrorKey] as? String).map { $0 == path ? path : "\(path) (at \($0))" } ?? path
            throw POSIXFile.error(operation, failedPath, errno: code)
        } catch {
            throw RegistryError(.storageFailure, "cannot \(operation) \(path): \(error.localizedDescription)")
        }
    }

    private static func posixCode(_ code: CocoaError.Code) -> Int32 {
        switch code {
        case .fileWriteVolumeReadOnly: EROFS
        case .fileWriteNoPermission, .fileReadNoPermission: EACCES
        case .fileWriteOutOfSpace: ENOSPC
        case .fileNoSuchFile, .fileReadNoSuchFile: ENOENT
        case .fileWriteFileExists: EEXIST
        default: EIO
        }
    }
}
