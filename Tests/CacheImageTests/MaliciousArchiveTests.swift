import CacheImage
import Foundation
import ModelRegistryCore
import Testing

/// Archives built by Python's tarfile to attack the extractor. Every one must be refused with an integrity
/// error, and nothing may appear outside the extraction directory.
@Suite struct MaliciousArchiveTests {
    static let generator = """
        import io, sys, tarfile, os
        out, victim = sys.argv[1], sys.argv[2]
        config = b'{"model_type":"llama"}'
        def archive(name, members):
            with tarfile.open(os.path.join(out, name + ".tar"), "w", format=tarfile.PAX_FORMAT) as tar:
                for info, data in members:
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
        def file(name, data, size=None):
            info = tarfile.TarInfo(name); info.size = len(data) if size is None else size; info.mode = 0o644
            return info, data
        def special(name, kind, target=""):
            info = tarfile.TarInfo(name); info.type = kind; info.linkname = target
            return info, None
        good = file("config.json", config)
        archive("absolute", [file(victim + "/absolute", config)])
        archive("dotdot", [file("../" + os.path.basename(victim) + "-dotdot", config)])
        # A combining mark after the '/' glues it to the next character, hiding the '..' from a Character split.
        archive("combining", [file("../\\u0301" + os.path.basename(victim) + "-combining", config)])
        archive("hardlink", [special("config.json", tarfile.LNKTYPE, "/etc/passwd")])
        archive("symlink", [special("config.json", tarfile.SYMTYPE, victim)])
        archive("device", [special("config.json", tarfile.CHRTYPE)])
        archive("fifo", [special("config.json", tarfile.FIFOTYPE)])
        archive("extra", [good, file("extra.bin", b"x")])
        archive("altered", [file("config.json", config.replace(b"llama", b"llamb"))])
        archive("resized", [file("config.json", config + b" ")])
        archive("duplicate", [good, good])
        archive("directory", [special("config.json", tarfile.DIRTYPE)])
        archive("missing", [])
        with open(os.path.join(out, "truncated.tar"), "wb") as f:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info, data = file("config.json", config * 100)
                tar.addfile(info, io.BytesIO(data))
            f.write(buffer.getvalue()[:1200])
        with open(os.path.join(out, "garbage.tar"), "wb") as f:
            f.write(os.urandom(4096))
        """

    @Test func everyMaliciousShapeIsRefused() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let archives = root.appendingPathComponent("archives")
        let victim = root.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: archives, withIntermediateDirectories: true)
        try python(Self.generator, [archives.path, victim.path])
        let config = Array(#"{"model_type":"llama"}"#.utf8)
        let manifest = Manifest(
            format: .other,
            files: [
                ManifestFile(
                    path: try ManifestPath("config.json"), digest: Digest.of(config), size: Int64(config.count))
            ])
        let image = CacheImage(
            model: try ModelName("m"), manifestDigest: manifest.digest, manifest: manifest, layout: .flat)
        let names = try FileManager.default.contentsOfDirectory(atPath: archives.path).sorted()
        #expect(names.count == 15)
        for name in names {
            let destination = root.appendingPathComponent("out-\(name)")
            try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
            let bytes = try [UInt8](Data(contentsOf: archives.appendingPathComponent(name)))
            let error = #expect(throws: RegistryError.self, "\(name)") {
                try extract(bytes, image.entries, into: destination)
            }
            #expect(error?.code == .integrity, "\(name): \(String(describing: error))")
        }
        let outside = try FileManager.default.contentsOfDirectory(atPath: root.path).filter {
            !$0.hasPrefix("out-") && $0 != "archives"
        }
        #expect(outside.isEmpty, "written outside the destinations: \(outside)")
        #expect(!FileManager.default.fileExists(atPath: victim.path))
    }

    /// The genuine image of the same variant goes through, so the refusals above are about the attacks.
    @Test func theGenuineImageIsAccepted() throws {
        let variant = Variant.sample
        let image = try variant.image(.flat)
        let destination = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: destination) }
        try extract(variant.bytes(of: image), image.entries, into: destination)
        for (path, bytes) in variant.files {
            #expect(try [UInt8](Data(contentsOf: destination.appendingPathComponent(path))) == bytes)
        }
        let script = destination.appendingPathComponent("serving/run.sh").path
        #expect(FileManager.default.isExecutableFile(atPath: script))
    }

    /// A stream that starts at an entry's header (a resumed fetch) extracts the remaining entries only.
    @Test func aStreamCanStartAtAnyEntry() throws {
        let variant = Variant.sample
        let image = try variant.image(.hf)
        let destination = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: destination) }
        let resumeAt = image.entries.count / 2
        try extract(
            Array(variant.bytes(of: image)[..<Int(image.entries[resumeAt].offset)]) + TarTail.end,
            Array(image.entries[..<resumeAt]), into: destination)
        try extract(
            variant.bytes(of: image, image.entries[resumeAt].offset..<image.size), Array(image.entries[resumeAt...]),
            into: destination)
        let blobs = destination.appendingPathComponent("models--org--tiny/blobs")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: blobs.path).count == Set(variant.files.values).count)
    }
}

extension MaliciousArchiveTests {
    /// A variant holding `café/config.json` (NFC): an image spelling it in NFD places it under the NFC name or
    /// is refused, never extracted under another name; one listing the file before its directory is refused
    /// as an integrity error, not failed as a storage error.
    @Test(arguments: ["nfd", "file-first"])
    func misspelledAndMisorderedEntriesAreRefused(_ shape: String) throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let config = Array(#"{"model_type":"llama"}"#.utf8)
        let variant = Variant(files: ["caf\u{e9}/config.json": config])
        let image = try variant.image(.flat)
        let archive = root.appendingPathComponent("image.tar")
        try python(
            """
            import io, sys, tarfile
            shape, out = sys.argv[1], sys.argv[2]
            directory = "cafe\\u0301" if shape == "nfd" else "caf\\u00e9"
            config = b'{"model_type":"llama"}'
            folder = tarfile.TarInfo(directory); folder.type = tarfile.DIRTYPE; folder.mode = 0o755
            file = tarfile.TarInfo(directory + "/config.json"); file.size = len(config); file.mode = 0o644
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
                members = [(folder, None), (file, config)] if shape == "nfd" else [(file, config), (folder, None)]
                for info, data in members:
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
            """, [shape, archive.path])
        let destination = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        let bytes = try [UInt8](Data(contentsOf: archive))
        do {
            try extract(bytes, image.entries, into: destination)
            // libarchive hands pax names over normalized to NFC: then the file must sit under the variant's
            // own bytes, and under no other spelling.
            #expect(shape == "nfd", "a file before its directory was extracted")
            let written = try FileManager.default.subpathsOfDirectory(atPath: destination.path).map { Array($0.utf8) }
                .sorted { $0.lexicographicallyPrecedes($1) }
            #expect(written == [Array("caf\u{e9}".utf8), Array("caf\u{e9}/config.json".utf8)], "\(written)")
        } catch let error as RegistryError {
            #expect(error.code == .integrity, "\(error)")
            let written = try FileManager.default.subpathsOfDirectory(atPath: destination.path)
            #expect(!written.contains { $0.hasSuffix("config.json") }, "\(written)")
        }
    }

    /// Names in several scripts, long enough (over 100 bytes) that the image carries them in pax records:
    /// extracted whatever the process's locale (a Swift process stays in "C").
    @Test(arguments: [CacheImageLayout.flat, .hf])
    func nonASCIINamesInPaxRecordsAreExtracted(_ layout: CacheImageLayout) throws {
        let names = [
            String(repeating: "模型权重", count: 10) + ".safetensors",
            "données/" + String(repeating: "é", count: 60) + ".json",
            "Καλημέρα/" + String(repeating: "λ", count: 55) + ".txt",
            "ملفات/" + String(repeating: "ب", count: 50) + ".bin",
            "tokenizer/ключи-токенизатора.json",
        ]
        let variant = Variant(
            files: Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Array("file \($0)".utf8)) }))
        let image = try variant.image(layout)
        let destination = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: destination) }
        try extract(variant.bytes(of: image), image.entries, into: destination)
        let placed = try FileManager.default.subpathsOfDirectory(atPath: destination.path)
        for name in names {
            #expect(
                placed.contains { layout == .flat ? $0.utf8.elementsEqual(name.utf8) : $0.hasSuffix("/" + name) },
                "\(name)")
        }
    }
}

enum TarTail {
    static let end = [UInt8](repeating: 0, count: 1024)
}
