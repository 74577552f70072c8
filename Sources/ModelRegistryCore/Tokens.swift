import Crypto

/// What a token may do. Each scope includes the ones below it.
public enum TokenScope: String, Sendable, Codable, CaseIterable, Comparable {
    case read, write, admin

    private var rank: Int {
        switch self {
        case .read: 0
        case .write: 1
        case .admin: 2
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }

    public init(parsing text: String) throws(RegistryError) {
        guard let scope = TokenScope(rawValue: text) else {
            throw RegistryError(.invalidRequest, "invalid scope '\(text.prefix(40))': use read, write or admin")
        }
        self = scope
    }
}

/// A bearer token's secret. Only its hash is ever stored; the secret is shown once, when it is created.
public struct TokenSecret: Sendable {
    public static let prefix = "mrt_"
    public let value: String

    public init(_ value: String) { self.value = value }

    /// 32 random bytes from the system's CSPRNG, base64url-encoded.
    public static func generate() -> TokenSecret {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return TokenSecret(prefix + base64URL(bytes))
    }

    /// The stored form: lowercase hex sha256 of the whole token.
    public var hash: String { Digest.of(Array(value.utf8)).hex }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out = [UInt8]()
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { value |= UInt32(byte) << (16 - 8 * offset) }
            for position in 0..<(chunk.count + 1) { out.append(alphabet[Int((value >> (18 - 6 * position)) & 63)]) }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Compares two equal-length strings without stopping at the first difference.
/// The rule every token store applies when the token of an admin token file is one it knows already: only an
/// active admin token is accepted again; re-enabling a revoked or lesser one from a file would undo a decision.
public enum AdminTokenFile {
    public static func checkKnown(scope: String, revokedAt: String?) throws(RegistryError) {
        guard revokedAt == nil, scope == TokenScope.admin.rawValue else {
            throw RegistryError(
                .invalidRequest,
                "the admin token given at start was \(revokedAt != nil ? "revoked" : "created with scope \(scope)"): put a new token in its file"
            )
        }
    }
}

public func constantTimeEquals(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8)
    let y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for index in x.indices { difference |= x[index] ^ y[index] }
    return difference == 0
}
