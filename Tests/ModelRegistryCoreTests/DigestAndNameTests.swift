import ModelRegistryCore
import Testing

@Suite struct DigestTests {
    @Test func knownVector() {
        #expect(
            Digest.of(Array("abc".utf8)).description
                == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func incrementalEqualsOneShot() {
        var hasher = ContentHasher()
        hasher.update(Array("ab".utf8))
        hasher.update(Array("c".utf8))
        #expect(hasher.finalize() == Digest.of(Array("abc".utf8)))
    }

    @Test(arguments: [
        "sha256:" + String(repeating: "a", count: 63),
        "sha256:" + String(repeating: "A", count: 64),
        "sha512:" + String(repeating: "a", count: 64),
        "sha256:" + String(repeating: "g", count: 64),
        String(repeating: "a", count: 64),
        "sha256:" + String(repeating: "a", count: 64) + "/../x",
        "",
    ])
    func rejectsMalformedDigests(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try Digest(parsing: text) }
        #expect(error?.code == .invalidDigest)
    }

    @Test func roundTrips() throws {
        let text = "sha256:" + String(repeating: "0123456789abcdef", count: 4)
        #expect(try Digest(parsing: text).description == text)
    }
}

@Suite struct NameTests {
    @Test(arguments: ["qwen2-7b", "org/qwen2-7b", "a", "llama.3_1-8b", "0rg/m0del"])
    func acceptsModelNames(_ text: String) throws {
        #expect(try ModelName(text).value == text)
    }

    @Test(arguments: [
        "", "Qwen", "a/b/c", "/a", "a/", "-a", ".a", "a b", "a/versions", "aliases", "a/../b", "ü",
        String(repeating: "a", count: 65),
    ])
    func rejectsModelNames(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try ModelName(text) }
        #expect(error?.code == .invalidName)
    }

    @Test func versionsVariantsAliases() throws {
        #expect(try VersionName("2025-06-01").value == "2025-06-01")
        #expect(try VersionName("V1.0_rc-2").value == "V1.0_rc-2")
        #expect(throws: RegistryError.self) { try VersionName("1.0/2") }
        #expect(throws: RegistryError.self) { try VersionName("..") }
        #expect(throws: RegistryError.self) { try VersionName(String(repeating: "1", count: 129)) }
        #expect(try VariantName("gguf-q4_k_m").value == "gguf-q4_k_m")
        #expect(throws: RegistryError.self) { try VariantName("AWQ") }
        #expect(try AliasName("prod").value == "prod")
        #expect(throws: RegistryError.self) { try AliasName("1prod") }
        #expect(throws: RegistryError.self) { try AliasName("sha256:abc") }
    }
}

@Suite struct ReferenceTests {
    @Test func parsesEveryForm() throws {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        #expect(try ModelReference(parsing: "org/m").target == .model)
        #expect(try ModelReference(parsing: "org/m:1.0").target == .version(try VersionName("1.0")))
        #expect(try ModelReference(parsing: "m@prod").target == .alias(try AliasName("prod")))
        #expect(try ModelReference(parsing: "m@\(digest)").target == .digest(try Digest(parsing: digest)))
        for text in ["org/m:1.0", "m@prod", "m@\(digest)", "m"] {
            #expect(try ModelReference(parsing: text).description == text)
        }
    }

    @Test(arguments: ["", "M:1", "m:", "m@", "m@sha256:abc", "m:1@prod", "m:../x", "a/b/c:1"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: RegistryError.self) { try ModelReference(parsing: text) }
    }

    @Test func releaseNeedsATarget() {
        let error = #expect(throws: RegistryError.self) { try ModelReference.release("m") }
        #expect(error?.code == .invalidReference)
    }
}

@Suite struct ManifestPathTests {
    @Test(arguments: ["config.json", "a/b/c.safetensors", "tokenizer/vocab.txt", ".hidden", "a..b"])
    func accepts(_ text: String) throws {
        #expect(try ManifestPath(text).value == text)
    }

    @Test(arguments: [
        "", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "a\u{0}b", "a\\b", "a\nb",
        String(repeating: "a", count: 256), String(repeating: "a/", count: 600) + "a",
    ])
    func rejects(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try ManifestPath(text) }
        #expect(error?.code == .invalidPath)
    }

    /// A combining mark after '/' makes one Character of both, which hid these '..' and '.' parts from a
    /// split by Character: "../\u{301}x" was taken, and a pull or fetch wrote outside its destination.
    @Test(arguments: ["../\u{301}x", "a/../\u{301}b", "./\u{20dd}x", "a/\u{301}/../b", "a//\u{301}b"])
    func rejectsDotPartsHiddenByCombiningMarks(_ text: String) {
        let error = #expect(throws: RegistryError.self) { try ManifestPath(text) }
        #expect(error?.code == .invalidPath)
        #expect(
            error?.message.contains("'.' and '..' are not allowed") == true
                || error?.message.contains("empty path component") == true)
    }

    @Test func componentsSplitAtEverySlash() throws {
        let path = try ManifestPath("a/\u{301}b/c")
        #expect(path.components.map(String.init) == ["a", "\u{301}b", "c"])
    }
}
