import Foundation
import ModelRegistryCore

/// Header names of the HTTP API beyond the standard ones.
public enum APIHeader {
    /// The offset an upload has reached (uploads) or must continue from (PATCH).
    public static let uploadOffset = "Upload-Offset"
    /// The digest of the blob or manifest in the response.
    public static let digest = "Modelreg-Digest"
    /// The version and variant a manifest reference resolved to.
    public static let version = "Modelreg-Version"
    public static let variant = "Modelreg-Variant"
    /// Present when the manifest's version is deprecated: the reason, or `deprecated`.
    public static let deprecated = "Modelreg-Deprecated"
    /// How far a cache image is built: pending, building, ready or failed.
    public static let imageState = "Modelreg-Image-State"
}

/// The JSON bodies of the HTTP API, shared by the server that writes them and the client that reads them.
/// `openapi.json` describes the same shapes.

public struct ErrorBody: Codable, Sendable {
    public struct Detail: Codable, Sendable {
        public var code: String
        public var message: String
    }

    public var error: Detail

    public init(_ error: RegistryError) {
        self.error = Detail(code: error.code.rawValue, message: error.message)
    }
}

public struct UploadStatus: Codable, Sendable {
    public var id: String
    public var offset: Int64
    /// True in the answer to a digest-less start when the server would copy the bytes once more at the commit
    /// (its blobs are in an object store): a client that can hash first should cancel this upload and start
    /// one that names its digest.
    public var digestFirst: Bool?

    public init(id: String, offset: Int64, digestFirst: Bool? = nil) {
        self.id = id
        self.offset = offset
        self.digestFirst = digestFirst
    }
}

public struct CommittedBlob: Codable, Sendable {
    public var digest: Digest
    public var size: Int64

    public init(digest: Digest, size: Int64) {
        self.digest = digest
        self.size = size
    }
}

public struct ModelList: Codable, Sendable {
    public var models: [ModelSummary]
    public init(models: [ModelSummary]) { self.models = models }
}

public struct VersionList: Codable, Sendable {
    public var versions: [VersionSummary]
    public init(versions: [VersionSummary]) { self.versions = versions }
}

public struct AliasList: Codable, Sendable {
    public var aliases: [AliasTarget]
    public init(aliases: [AliasTarget]) { self.aliases = aliases }
}

/// The compare-and-swap part of an alias move: `expect` names the version the alias must point to now and
/// `expectVariant` the variant it must pin (absent: none), `expectAbsent` says it must not exist yet.
/// Without either the move is unconditional.
public protocol AliasMoveBody: Codable, Sendable {
    var expect: VersionName? { get }
    var expectVariant: VariantName? { get }
    var expectAbsent: Bool? { get }
}

extension AliasMoveBody {
    public var expectation: AliasExpectation? {
        get throws(RegistryError) {
            switch (expect, expectAbsent ?? false) {
            case (nil, false):
                guard expectVariant == nil else {
                    throw RegistryError(.invalidRequest, "expectVariant needs expect, the version")
                }
                return nil
            case (nil, true):
                guard expectVariant == nil else {
                    throw RegistryError(.invalidRequest, "expectVariant and expectAbsent exclude each other")
                }
                return .absent
            case (let version?, false): return .target(version, variant: expectVariant)
            case (_?, true): throw RegistryError(.invalidRequest, "expect and expectAbsent exclude each other")
            }
        }
    }
}

extension AliasExpectation {
    /// The body fields that carry this expectation.
    public var fields: (expect: VersionName?, expectVariant: VariantName?, expectAbsent: Bool?) {
        switch self {
        case .absent: (nil, nil, true)
        case .target(let version, let variant): (version, variant, nil)
        }
    }
}

public struct AliasUpdate: AliasMoveBody {
    public var version: VersionName
    public var variant: VariantName?
    public var expect: VersionName?
    public var expectVariant: VariantName?
    public var expectAbsent: Bool?

    public init(version: VersionName, variant: VariantName?, expectation: AliasExpectation? = nil) {
        self.version = version
        self.variant = variant
        (expect, expectVariant, expectAbsent) = expectation?.fields ?? (nil, nil, nil)
    }
}

public struct AliasPromotion: AliasMoveBody {
    /// The alias whose target is copied.
    public var from: AliasName
    public var expect: VersionName?
    public var expectVariant: VariantName?
    public var expectAbsent: Bool?

    public init(from: AliasName, expectation: AliasExpectation? = nil) {
        self.from = from
        (expect, expectVariant, expectAbsent) = expectation?.fields ?? (nil, nil, nil)
    }
}

public struct AliasRollback: AliasMoveBody {
    /// An earlier target to go back to; without it, the one before the current target.
    public var to: VersionName?
    public var expect: VersionName?
    public var expectVariant: VariantName?
    public var expectAbsent: Bool?

    public init(to: VersionName?, expectation: AliasExpectation? = nil) {
        self.to = to
        (expect, expectVariant, expectAbsent) = expectation?.fields ?? (nil, nil, nil)
    }
}

public struct AliasHistory: Codable, Sendable {
    public var model: ModelName
    public var alias: AliasName
    /// Oldest first.
    public var entries: [AliasHistoryEntry]

    public init(model: ModelName, alias: AliasName, entries: [AliasHistoryEntry]) {
        self.model = model
        self.alias = alias
        self.entries = entries
    }
}

public struct DeprecationRequest: Codable, Sendable {
    public var reason: String?
    public init(reason: String?) { self.reason = reason }
}

public struct AuditLog: Codable, Sendable {
    /// Newest first.
    public var entries: [AuditEntry]
    public init(entries: [AuditEntry]) { self.entries = entries }
}

public struct PublishedVariant: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantSummary
    public var created: Bool

    public init(model: ModelName, version: VersionName, variant: VariantSummary, created: Bool) {
        self.model = model
        self.version = version
        self.variant = variant
        self.created = created
    }
}

public struct TokenRequest: Codable, Sendable {
    public var name: TokenLabel
    public var scope: TokenScope

    public init(name: TokenLabel, scope: TokenScope) {
        self.name = name
        self.scope = scope
    }
}

/// The one response that carries a token's secret.
public struct CreatedToken: Codable, Sendable {
    public var name: TokenLabel
    public var scope: TokenScope
    public var createdAt: String
    public var token: String

    public init(record: TokenRecord, secret: TokenSecret) {
        name = record.name
        scope = record.scope
        createdAt = record.createdAt
        token = secret.value
    }
}

public struct TokenList: Codable, Sendable {
    public var tokens: [TokenRecord]
    public init(tokens: [TokenRecord]) { self.tokens = tokens }
}

/// How fast the server answering has sent blobs lately (`GET /v1/stats/downloads`): the median of its last
/// downloads of at least 16 MiB, nil before the first.
public struct DownloadSpeed: Codable, Sendable, Equatable {
    public var medianBytesPerSecond: Int64?
    public var samples: Int
    public init(medianBytesPerSecond: Int64?, samples: Int) {
        self.medianBytesPerSecond = medianBytesPerSecond
        self.samples = samples
    }
}

public struct HealthStatus: Codable, Sendable {
    public var status: String
    public init(status: String) { self.status = status }
}

/// Where a variant's cache image in one layout stands. An image that is not ready is still served, without
/// an `ETag`, from the same blobs.
public struct CacheImageStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case pending, building, ready, failed
    }

    public var layout: String
    public var state: State
    /// The sha256 of the whole archive, once built.
    public var digest: Digest?
    public var size: Int64
    public var builtAt: String?
    public var error: String?

    public init(
        layout: String, state: State, digest: Digest? = nil, size: Int64, builtAt: String? = nil, error: String? = nil
    ) {
        self.layout = layout
        self.state = state
        self.digest = digest
        self.size = size
        self.builtAt = builtAt
        self.error = error
    }
}

public struct CacheImageStatusList: Codable, Sendable {
    public var model: ModelName
    public var manifest: Digest
    public var images: [CacheImageStatus]

    public init(model: ModelName, manifest: Digest, images: [CacheImageStatus]) {
        self.model = model
        self.manifest = manifest
        self.images = images
    }
}
