/// Header names of the HTTP API beyond the standard ones.
public enum APIHeader {
    /// The offset an upload has reached (uploads) or must continue from (PATCH).
    public static let uploadOffset = "Upload-Offset"
    /// The digest of the blob or manifest in the response.
    public static let digest = "Modelreg-Digest"
    /// The version and variant a manifest reference resolved to.
    public static let version = "Modelreg-Version"
    public static let variant = "Modelreg-Variant"
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

    public init(id: String, offset: Int64) {
        self.id = id
        self.offset = offset
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

public struct AliasUpdate: Codable, Sendable {
    public var version: VersionName
    public var variant: VariantName?

    public init(version: VersionName, variant: VariantName?) {
        self.version = version
        self.variant = variant
    }
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

public struct HealthStatus: Codable, Sendable {
    public var status: String
    public init(status: String) { self.status = status }
}
