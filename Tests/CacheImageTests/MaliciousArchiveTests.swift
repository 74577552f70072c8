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
        let archives = root.appendingPathComponent("archives"), victim = root.appendingPathComponent("victim")
        try FileManager.default.createDirectory(at: archives, withIntermediateDirectories: true)
        try python(Self.generator, [archives.path, victim.path])
        let config = Array(#"{"model_type":"llama"}"#.utf8)
        let manifest = Manifest(format: .other, files: [
            ManifestFile(path: try ManifestPath("config.json"), digest: Digest.of(config), size: Int64(config.count)),
        ])
        let image = CacheImage(model: try ModelName("m"), manifestDigest: manifest.digest, manifest: manifest, layout: .flat)
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
        let outside = try FileManager.default.contentsOfDirectory(atPath: root.path).filter { !$0.hasPrefix("out-") && $0 != "archives" }
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
        try extract(Array(variant.bytes(of: image)[..<Int(image.entries[resumeAt].offset)]) + TarTail.end, Array(image.entries[..<resumeAt]), into: destination)
        try extract(variant.bytes(of: image, image.entries[resumeAt].offset..<image.size), Array(image.entries[resumeAt...]), into: destination)
        let blobs = destination.appendingPathComponent("models--org--tiny/blobs")
        #expect(try FileManager.default.contentsOfDirectory(atPath: blobs.path).count == Set(variant.files.values).count)
    }
}

enum TarTail {
    static let end = [UInt8](repeating: 0, count: 1024)
}
