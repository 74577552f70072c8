import CResumableSHA256

/// The name of a blob: `sha256:` followed by 64 lowercase hex digits.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public static let prefix = "sha256:"

    /// The 64 lowercase hex digits.
    public let hex: String

    public init(parsing text: some StringProtocol) throws(RegistryError) {
        guard text.hasPrefix(Self.prefix) else {
            throw RegistryError(
                .invalidDigest,
                "invalid digest '\(text.prefix(80))': expected sha256: followed by 64 lowercase hex digits")
        }
        let hex = text.dropFirst(Self.prefix.count)
        guard hex.utf8.count == 64, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw RegistryError(
                .invalidDigest,
                "invalid digest '\(text.prefix(80))': expected sha256: followed by 64 lowercase hex digits")
        }
        self.hex = String(hex)
    }

    init(uncheckedHex hex: String) {
        self.hex = hex
    }

    public var description: String { Self.prefix + hex }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.hex < rhs.hex }

    /// Digest of bytes held in memory (manifests, small test data).
    public static func of(_ bytes: some Sequence<UInt8>) -> Digest {
        var hasher = ContentHasher()
        hasher.update(Array(bytes))
        return hasher.finalize()
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        self = try Digest(parsing: container.decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Incremental SHA-256 over streamed bytes; the one place the hash function is chosen. Its state can be saved
/// (`savedState`) and restored, so the hash of an upload can be finished by another process than the one that
/// began it.
public struct ContentHasher: Sendable {
    private var state = modelreg_sha256()
    /// Bytes hashed so far.
    public private(set) var count: Int64 = 0

    public init() {
        modelreg_sha256_init(&state)
    }

    /// Continues from `savedState`; throws `.integrity` for bytes that are not such a state.
    public init(restoring savedState: [UInt8]) throws(RegistryError) {
        let restored = savedState.withUnsafeBufferPointer { modelreg_sha256_import(&state, $0.baseAddress, $0.count) }
        guard restored == 0 else {
            throw RegistryError(.integrity, "a saved hash state of \(savedState.count) bytes is damaged")
        }
        count = savedState[32..<40].reduce(0) { $0 << 8 | Int64($1) }
    }

    /// The state as bytes: the chaining value, the length hashed, and the bytes of the unfinished block.
    public var savedState: [UInt8] {
        withUnsafePointer(to: state) { state in
            [UInt8](unsafeUninitializedCapacity: MODELREG_SHA256_STATE_MAX) { buffer, written in
                written = modelreg_sha256_export(state, buffer.baseAddress)
            }
        }
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        modelreg_sha256_update(&state, bytes.baseAddress, bytes.count)
        count += Int64(bytes.count)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything seen so far; the hasher itself can keep going.
    public func finalize() -> Digest {
        var digest = [UInt8](repeating: 0, count: 32)
        withUnsafePointer(to: state) { state in modelreg_sha256_digest(state, &digest) }
        return Digest(uncheckedHex: Self.hex(digest))
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let alphabet = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(alphabet[Int(byte >> 4)])
            out.append(alphabet[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
