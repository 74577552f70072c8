import Testing

@testable import ModelRegistryCore

struct ContentHasherTests {
    /// FIPS 180-2's examples and the empty message.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
    ])
    func knownDigests(text: String, hex: String) {
        #expect(Digest.of(Array(text.utf8)).hex == hex)
    }

    @Test func aMillionAs() {
        var hasher = ContentHasher()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(hasher.finalize().hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(hasher.count == 1_000_000)
    }

    /// A hash saved at any point, restored into a new hasher and continued, ends where hashing in one go does:
    /// across every position in and around a block, and after the digest was asked for midway.
    @Test func aSavedStateContinuesWhereItStopped() throws {
        let bytes = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let whole = Digest.of(bytes)
        for split in 0...bytes.count {
            var first = ContentHasher()
            first.update(Array(bytes[..<split]))
            _ = first.finalize()
            let saved = first.savedState
            #expect(saved.count == 40 + split % 64)
            var second = try ContentHasher(restoring: saved)
            #expect(second.count == Int64(split))
            #expect(second.finalize() == first.finalize())
            second.update(Array(bytes[split...]))
            #expect(second.finalize() == whole, "split at \(split)")
        }
    }

    @Test func aDamagedStateIsRefused() {
        var hasher = ContentHasher()
        hasher.update(Array(repeating: 7, count: 100))
        let saved = hasher.savedState
        #expect(throws: RegistryError.self) { try ContentHasher(restoring: Array(saved.dropLast())) }
        #expect(throws: RegistryError.self) { try ContentHasher(restoring: saved + [0]) }
        #expect(throws: RegistryError.self) { try ContentHasher(restoring: Array(saved.prefix(39))) }
        #expect(throws: RegistryError.self) { try ContentHasher(restoring: []) }
        var longer = saved
        longer[39] &+= 1  // a length whose unfinished block is not the bytes that follow
        #expect(throws: RegistryError.self) { try ContentHasher(restoring: longer) }
    }
}
