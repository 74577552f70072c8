import Foundation
import ModelRegistryCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `modelreg pull`: resolves a reference, downloads every file into a staging directory beside the
/// destination, verifies each against its digest, and only then renames the directory into place.
public struct Puller: Sendable {
    public let connection: RegistryConnection
    public var jobs: Int

    public init(connection: RegistryConnection, jobs: Int = 4) {
        self.connection = connection
        self.jobs = max(1, jobs)
    }

    public func pull(
        _ reference: ModelReference, variant: VariantName?, destination: URL, replace: Bool,
        log: @escaping @Sendable (String) -> Void = { _ in },
        warn: @Sendable (String) -> Void = { _ in }
    ) async throws -> PullReport {
        let start = ContinuousClock.now
        let destination = destination.standardizedFileURL
        let fileManager = FileManager.default
        let replacing = try Self.checkDestination(destination, replace: replace)
        let resolved = try await connection.resolve(reference, variant: variant)
        if let reason = resolved.deprecation { warn(Presentation.deprecationWarning(resolved, reason: reason)) }
        let parent = destination.deletingLastPathComponent()
        try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).modelreg-\(UUID().uuidString.prefix(8))")
        try fileManager.createDirectory(at: staging, withIntermediateDirectories: false)
        do {
            for directory in Set(resolved.manifest.files.map { $0.path.components.dropLast().joined(separator: "/") }) where !directory.isEmpty {
                try fileManager.createDirectory(at: staging.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
            _ = try await forEach(resolved.manifest.files, jobs: jobs) { file in
                try await connection.downloadBlob(
                    file.digest, size: file.size, to: staging.appendingPathComponent(file.path.value), executable: file.executable
                )
                log("downloaded \(file.path) (\(ByteCount.format(file.size)))")
            }
            try POSIXFile.syncDirectory(staging.path)
            if replacing {
                let old = parent.appendingPathComponent(".\(destination.lastPathComponent).modelreg-old-\(UUID().uuidString.prefix(8))")
                try POSIXFile.rename(destination.path, to: old.path)
                try POSIXFile.rename(staging.path, to: destination.path)
                try? fileManager.removeItem(at: old)
            } else {
                try POSIXFile.rename(staging.path, to: destination.path)
            }
            try POSIXFile.syncDirectory(parent.path)
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
        return PullReport(
            model: resolved.model, version: resolved.version, variant: resolved.variant, digest: resolved.digest,
            destination: destination.path, files: resolved.manifest.files.count, bytes: resolved.manifest.totalSize,
            seconds: (ContinuousClock.now - start).seconds, deprecation: resolved.deprecation
        )
    }

    /// True when an existing destination is to be replaced. An empty directory is simply taken over.
    private static func checkDestination(_ destination: URL, replace: Bool) throws -> Bool {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: destination.path, isDirectory: &isDirectory) else { return false }
        guard isDirectory.boolValue else {
            throw RegistryError(.conflict, "\(destination.path) exists and is not a directory")
        }
        if try fileManager.contentsOfDirectory(atPath: destination.path).isEmpty {
            try fileManager.removeItem(at: destination)
            return false
        }
        guard replace else {
            throw RegistryError(.conflict, "\(destination.path) is not empty: choose another --dest or pass --force to replace it")
        }
        return true
    }
}

public struct PullReport: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var digest: Digest
    public var destination: String
    public var files: Int
    public var bytes: Int64
    public var seconds: Double
    public var deprecation: String?
}

/// Human-readable byte counts in binary units.
public enum ByteCount {
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
