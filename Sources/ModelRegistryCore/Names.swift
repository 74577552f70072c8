/// Validated names. Each type accepts exactly the grammar documented in the README's "References" section,
/// so anything that reaches a path, a URL or a SQL row has already been checked here.

private enum CharacterClass {
    static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
    static func isAlnum(_ c: UInt8) -> Bool { isLowerAlnum(c) || (c >= 65 && c <= 90) }
    static func isSeparator(_ c: UInt8) -> Bool { c == 46 || c == 95 || c == 45 }  // . _ -
}

/// A model name: one or two segments separated by `/` (`qwen2-7b`, `org/qwen2-7b`).
public struct ModelName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// Words that name sub-resources in the HTTP API and so cannot be a segment of a model name.
    public static let reservedSegments: Set<String> = ["versions", "aliases", "manifests", "images"]
    public static let maxSegmentLength = 64

    public let value: String

    public init(_ text: some StringProtocol) throws(RegistryError) {
        let text = String(text)
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(segments.count) else {
            throw Self.invalid(text, "at most one '/' is allowed")
        }
        for segment in segments {
            let bytes = Array(segment.utf8)
            guard !bytes.isEmpty, bytes.count <= Self.maxSegmentLength else {
                throw Self.invalid(text, "each part must be 1 to \(Self.maxSegmentLength) characters")
            }
            guard CharacterClass.isLowerAlnum(bytes[0]),
                bytes.allSatisfy({ CharacterClass.isLowerAlnum($0) || CharacterClass.isSeparator($0) })
            else {
                throw Self.invalid(
                    text, "use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit")
            }
            guard !Self.reservedSegments.contains(String(segment)) else {
                throw Self.invalid(text, "'\(segment)' is a reserved word")
            }
        }
        self.value = text
    }

    private static func invalid(_ text: String, _ why: String) -> RegistryError {
        RegistryError(.invalidName, "invalid model name '\(text.prefix(140))': \(why)")
    }

    public var description: String { value }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        self = try Self(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Shared grammar of the single-token names: a leading character class, then letters, digits, `.`, `_`, `-`.
private protocol TokenName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    static var kind: String { get }
    static var maxLength: Int { get }
    static var allowsUppercase: Bool { get }
    static var mustStartWithLetter: Bool { get }
    var value: String { get }
    init(unchecked: String)
}

extension TokenName {
    static func validated(_ text: some StringProtocol) throws(RegistryError) -> Self {
        let text = String(text)
        let bytes = Array(text.utf8)
        let letterOrDigit = allowsUppercase ? CharacterClass.isAlnum : CharacterClass.isLowerAlnum
        let startOK =
            bytes.first.map { mustStartWithLetter ? (letterOrDigit($0) && !($0 >= 48 && $0 <= 57)) : letterOrDigit($0) }
            ?? false
        guard !bytes.isEmpty, bytes.count <= maxLength, startOK,
            bytes.allSatisfy({ letterOrDigit($0) || CharacterClass.isSeparator($0) })
        else {
            let letters = allowsUppercase ? "letters" : "lowercase letters"
            let start = mustStartWithLetter ? "a letter" : "a letter or digit"
            throw RegistryError(
                .invalidName,
                "invalid \(kind) '\(text.prefix(140))': use 1 to \(maxLength) \(letters), digits, '.', '_' and '-', starting with \(start)"
            )
        }
        return Self(unchecked: text)
    }

    public var description: String { value }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        self = try Self.validated(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// A version of a model (`1.0`, `2025-06-01`, `v2`). Published versions never change.
public struct VersionName: TokenName {
    static let kind = "version"
    static let maxLength = 128
    static let allowsUppercase = true
    static let mustStartWithLetter = false
    public let value: String
    init(unchecked: String) { value = unchecked }
    public init(_ text: some StringProtocol) throws(RegistryError) { self = try Self.validated(text) }
}

/// A variant of a version (`fp16`, `awq-int4`, `gguf-q4_k_m`).
public struct VariantName: TokenName {
    static let kind = "variant"
    static let maxLength = 64
    static let allowsUppercase = false
    static let mustStartWithLetter = false
    public let value: String
    init(unchecked: String) { value = unchecked }
    public init(_ text: some StringProtocol) throws(RegistryError) { self = try Self.validated(text) }

    /// The variant `push` creates when none is named.
    public static let `default` = VariantName(unchecked: "default")
}

/// A movable pointer to a version (`prod`, `canary`).
public struct AliasName: TokenName {
    static let kind = "alias"
    static let maxLength = 64
    static let allowsUppercase = false
    static let mustStartWithLetter = true
    public let value: String
    init(unchecked: String) { value = unchecked }
    public init(_ text: some StringProtocol) throws(RegistryError) { self = try Self.validated(text) }
}

/// The name of an API token (`ci`, `alice-laptop`).
public struct TokenLabel: TokenName {
    static let kind = "token name"
    static let maxLength = 64
    static let allowsUppercase = true
    static let mustStartWithLetter = false
    public let value: String
    init(unchecked: String) { value = unchecked }
    public init(_ text: some StringProtocol) throws(RegistryError) { self = try Self.validated(text) }
}
