/// Every failure a user can act on, with the HTTP status it maps to and a stable machine-readable code.
///
/// The message says what went wrong and, where it helps, what to do about it; it is shown as-is by the CLI
/// and sent as-is in the JSON error body.
public struct RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable, CaseIterable {
        case invalidName = "INVALID_NAME"
        case invalidReference = "INVALID_REFERENCE"
        case invalidDigest = "INVALID_DIGEST"
        case invalidPath = "INVALID_PATH"
        case invalidManifest = "INVALID_MANIFEST"
        case invalidRequest = "INVALID_REQUEST"
        case invalidModelFile = "INVALID_MODEL_FILE"
        case digestMismatch = "DIGEST_MISMATCH"
        case blobsMissing = "BLOBS_MISSING"
        case notFound = "NOT_FOUND"
        case methodNotAllowed = "METHOD_NOT_ALLOWED"
        case conflict = "CONFLICT"
        case aliasMoved = "ALIAS_MOVED"
        case ambiguousVariant = "AMBIGUOUS_VARIANT"
        case uploadOffsetMismatch = "UPLOAD_OFFSET_MISMATCH"
        case uploadBusy = "UPLOAD_BUSY"
        case rangeNotSatisfiable = "RANGE_NOT_SATISFIABLE"
        case payloadTooLarge = "PAYLOAD_TOO_LARGE"
        case notReady = "NOT_READY"
        case unauthorized = "UNAUTHORIZED"
        case forbidden = "FORBIDDEN"
        case insufficientStorage = "INSUFFICIENT_STORAGE"
        case databaseTooNew = "DATABASE_TOO_NEW"
        case storageFailure = "STORAGE_FAILURE"
        case integrity = "INTEGRITY"
        case internalError = "INTERNAL"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The HTTP status this error is answered with.
    public var httpStatus: Int {
        switch code {
        case .invalidName, .invalidReference, .invalidDigest, .invalidPath, .invalidManifest, .invalidRequest,
            .invalidModelFile,
            .digestMismatch, .blobsMissing:
            400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .methodNotAllowed: 405
        case .conflict, .aliasMoved, .ambiguousVariant, .uploadBusy: 409
        case .payloadTooLarge: 413
        case .uploadOffsetMismatch, .rangeNotSatisfiable: 416
        case .notReady: 503
        case .insufficientStorage: 507
        case .databaseTooNew, .storageFailure, .integrity, .internalError: 500
        }
    }
}

extension RegistryError {
    public static func notFound(_ what: String) -> RegistryError {
        RegistryError(.notFound, "\(what) not found")
    }

    /// A manifest names blobs the registry does not have, or has with another size: each problem is one
    /// "path (digest) ..." phrase; the first twenty are shown.
    public static func blobsMissing(_ problems: [String]) -> RegistryError {
        let shown = problems.prefix(20).joined(separator: "; ")
        let more = problems.count > 20 ? "; and \(problems.count - 20) more" : ""
        return RegistryError(
            .blobsMissing,
            "the manifest references \(problems.count) blob(s) the registry does not have: \(shown)\(more)")
    }

    /// A deleted version's name, which is never published or resolved again.
    public static func deletedVersion(_ model: ModelName, _ version: VersionName, at deletedAt: String) -> RegistryError
    {
        RegistryError(
            .conflict,
            "\(model):\(version) was deleted at \(deletedAt); version names are never reused, so a pinned reference cannot change meaning"
        )
    }

    public static func alreadyPublished(
        _ model: ModelName, _ version: VersionName, _ variant: VariantName, as digest: Digest
    ) -> RegistryError {
        RegistryError(
            .conflict,
            "\(model):\(version) variant '\(variant)' is already published as \(digest) with other content; published variants never change: push a new version"
        )
    }
}
