import Foundation

/// The release side of the registry: how aliases move, how versions are retired, and the record of who did
/// what. The types here are shared by the metadata store, the HTTP API and the CLI.

extension AliasName {
    /// `@latest` is computed (the newest version that is not deprecated), so no alias may take its name.
    public static let latest = AliasName(unchecked: "latest")
}

/// What the caller believes an alias points to now. A move carrying an expectation is a compare-and-swap:
/// it happens only if the belief is still true, so two people (or two CI jobs) cannot silently overwrite
/// each other's release.
public enum AliasExpectation: Sendable, Equatable {
    /// The alias must not exist yet.
    case absent
    /// The alias must point to exactly this target: this version, pinned to this variant or (nil) to none.
    /// A move of the variant alone changes the target, so two movers of one alias never both win.
    case target(VersionName, variant: VariantName?)
}

/// How an alias is moved.
public enum AliasMoveKind: Sendable, Equatable {
    /// Point at a version, and optionally one of its variants.
    case set(VersionName, variant: VariantName?)
    /// Point at whatever another alias of the same model points to (canary to prod).
    case promote(from: AliasName)
    /// Go back to the target before the latest move that has not been rolled back already, or to a given
    /// version.
    case rollback(to: VersionName?)
}

public struct AliasMove: Sendable, Equatable {
    public var model: ModelName
    public var alias: AliasName
    public var kind: AliasMoveKind
    public var expectation: AliasExpectation?
    public var actor: String

    public init(
        model: ModelName, alias: AliasName, kind: AliasMoveKind, expectation: AliasExpectation? = nil, actor: String
    ) {
        self.model = model
        self.alias = alias
        self.kind = kind
        self.expectation = expectation
        self.actor = actor
    }
}

/// One move of an alias, as kept in its history.
public struct AliasHistoryEntry: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        case set, promote, rollback
    }

    public var id: Int64
    public var alias: AliasName
    public var action: Action
    public var fromVersion: VersionName?
    public var fromVariant: VariantName?
    public var toVersion: VersionName
    public var toVariant: VariantName?
    public var actor: String
    public var at: String

    public init(
        id: Int64, alias: AliasName, action: Action, fromVersion: VersionName? = nil, fromVariant: VariantName? = nil,
        toVersion: VersionName, toVariant: VariantName? = nil, actor: String, at: String
    ) {
        self.id = id
        self.alias = alias
        self.action = action
        self.fromVersion = fromVersion
        self.fromVariant = fromVariant
        self.toVersion = toVersion
        self.toVariant = toVariant
        self.actor = actor
        self.at = at
    }
}

/// Why and when a version was deprecated. A deprecated version stays pullable; `@latest` skips it.
public struct Deprecation: Codable, Sendable, Equatable {
    public var at: String
    public var by: String
    public var reason: String?

    public init(at: String, by: String, reason: String? = nil) {
        self.at = at
        self.by = by
        self.reason = reason
    }
}

/// What a version delete removed. Its files' blobs are garbage once no other manifest references them.
public struct DeletedVersion: Codable, Sendable, Equatable {
    public var model: ModelName
    public var version: VersionName
    public var variants: [VariantName]
    /// The manifest digests of those variants, which no longer resolve.
    public var manifests: [Digest]
    public var size: Int64
    public var deletedAt: String

    public init(
        model: ModelName, version: VersionName, variants: [VariantName], manifests: [Digest], size: Int64,
        deletedAt: String
    ) {
        self.model = model
        self.version = version
        self.variants = variants
        self.manifests = manifests
        self.size = size
        self.deletedAt = deletedAt
    }
}

/// One mutating request, recorded in the same transaction as the change it made.
public struct AuditEntry: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable, CaseIterable {
        case publish
        case aliasSet = "alias.set"
        case aliasPromote = "alias.promote"
        case aliasRollback = "alias.rollback"
        case deprecate
        case delete
        case tokenCreate = "token.create"
        case tokenRevoke = "token.revoke"
    }

    public var id: Int64
    public var at: String
    /// The name of the token that made the request.
    public var actor: String
    public var action: Action
    public var model: ModelName?
    /// What was changed, in reference grammar (`m:1.0`, `m@prod`) or a token name.
    public var target: String
    /// The change itself: a digest, `1.0 -> 2.0`, a reason.
    public var detail: String?

    public init(
        id: Int64, at: String, actor: String, action: Action, model: ModelName? = nil, target: String,
        detail: String? = nil
    ) {
        self.id = id
        self.at = at
        self.actor = actor
        self.action = action
        self.model = model
        self.target = target
        self.detail = detail
    }
}

public struct AuditQuery: Sendable, Equatable {
    public var model: ModelName?
    /// Entries older than this id (paging backwards).
    public var before: Int64?
    public var limit: Int

    public static let maxLimit = 1000

    public init(model: ModelName? = nil, before: Int64? = nil, limit: Int = 100) {
        self.model = model
        self.before = before
        self.limit = min(max(limit, 1), Self.maxLimit)
    }
}

extension RegistryError {
    /// A compare-and-swap on an alias found someone else's move.
    public static func aliasMoved(
        _ model: ModelName, _ alias: AliasName, current: AliasTarget?, expected: AliasExpectation
    ) -> RegistryError {
        let expectedText =
            switch expected {
            case .absent: "not to exist"
            case .target(let version, let variant):
                "to point to \(version)" + (variant.map { " (variant \($0))" } ?? " with no variant pinned")
            }
        let currentText =
            current.map {
                "points to \($0.version)" + ($0.variant.map { " (variant \($0))" } ?? "")
                    + ", moved by \($0.updatedBy) at \($0.updatedAt)"
            }
            ?? "does not exist"
        return RegistryError(
            .aliasMoved,
            "\(model)@\(alias) \(currentText); the request expected it \(expectedText). Check `modelreg alias history \(model) \(alias)` and retry"
        )
    }
}

/// The `Modelreg-Deprecated` response header: the deprecation reason, percent-encoded so that any text
/// fits in a header, or `deprecated` when none was given.
public enum DeprecationHeader {
    static let maxReasonLength = 500

    /// A reason as stored: trimmed, nil when empty, refused with a character `isRefused` names or over 500 characters.
    public static func validatedReason(_ reason: String?) throws(RegistryError) -> String? {
        guard let trimmed = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else {
            return nil
        }
        guard trimmed.unicodeScalars.count <= maxReasonLength, !trimmed.unicodeScalars.contains(where: isRefused) else {
            throw RegistryError(
                .invalidRequest,
                "a deprecation reason is one line of at most \(maxReasonLength) characters, with no control or format characters"
            )
        }
        return trimmed
    }

    /// Control characters (Cc) and the Basic Multilingual Plane's format characters (Cf: bidi overrides, zero
    /// widths), exactly the set the OpenAPI document's pattern lists (a test compares them). Judged by the Swift
    /// runtime's Unicode tables: Foundation's `controlCharacters` on Linux also holds unassigned scalars of plane 14.
    public static func isRefused(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control: true
        case .format: scalar.value <= 0xFFFF
        default: false
        }
    }

    public static func value(_ deprecation: Deprecation) -> String {
        guard let reason = deprecation.reason else { return "deprecated" }
        return reason.addingPercentEncoding(withAllowedCharacters: headerSafe) ?? "deprecated"
    }

    public static func reason(fromHeader value: String) -> String {
        value.removingPercentEncoding ?? value
    }

    private static let headerSafe = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: " -_.,;:!?()/'"))
        .subtracting(nonASCII)
    private static let nonASCII = CharacterSet(charactersIn: Unicode.Scalar(0x80)!...Unicode.Scalar(0x10FFFF)!)
}
