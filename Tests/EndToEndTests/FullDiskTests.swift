import Foundation
import ModelRegistryCore
import Testing

/// A registry whose data volume fills up: the push that does not fit fails with 507 and exit status 8,
/// what was stored before stays intact and readable, no partial blob becomes visible, and once space is
/// freed the same push succeeds.
@Suite(.serialized) struct FullDiskTests {
    @Test(
        .enabled(
            if: TmpfsMount.available,
            "needs root and a mount(8) the container permits, to give the server a small tmpfs"))
    func pushOnAFullDiskFailsCleanlyAndRecovers() throws {
        let scratch = try Scratch()
        let volume = try TmpfsMount(at: scratch.url("volume"), size: "8m")
        defer { volume.unmount() }
        let data = volume.directory.appendingPathComponent("data")
        let server = try ServerProcess(data: data)
        defer { server.kill() }

        let small = scratch.url("small")
        let large = scratch.url("large")
        try TestModel.write(to: small, seed: 1)
        try TestModel.write(to: large, seed: 2, hidden: 256)
        let first = try modelreg(["push", small.path, "small:1.0"], environment: server.environment)
        try #require(first.status == 0, "\(first)")

        // Leave less room than the large model needs: the filler takes all but 256 KiB.
        let filler = volume.directory.appendingPathComponent("filler")
        let size = try fillDisk(filler)
        try #require(truncate(filler.path, off_t(max(0, size - 256 * 1024))) == 0)

        let refused = try modelreg(["push", large.path, "large:1.0"], environment: server.environment)
        #expect(refused.status == 8, "\(refused)")
        let errorLine = refused.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(
            errorLine.hasPrefix("error: the registry's disk is full (HTTP 507)") && errorLine.contains("no space left"),
            "\(refused.stderr)")
        #expect(refused.stderr.contains("free disk space"), "the error says what to do: \(refused.stderr)")

        // Nothing of the large model was published, and every visible blob is whole.
        let missing = try modelreg(["show", "large:1.0"], environment: server.environment)
        #expect(missing.status == 3, "\(missing)")
        try expectEveryBlobIsWhole(data)
        #expect(
            regularFiles(data).filter { $0.hasSuffix(".tmp") }.isEmpty, "no half-written file: \(regularFiles(data))")

        // Reads go on: the first model pulls and verifies, listing works, health answers.
        let pulled = scratch.url("pulled-small")
        let pull = try modelreg(["pull", "small:1.0", "--dest", pulled.path], environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
        try expectSameTree(small, pulled)
        let list = try modelreg(["ls"], environment: server.environment)
        #expect(list.status == 0 && list.stdout.contains("small"), "\(list)")
        #expect(try httpStatus(server.url + "/health/live") == 200)

        // A metadata write on the full disk either fits in the database's free pages or is refused with 507
        // (exit 8), never answered as a server failure.
        let alias = try modelreg(["alias", "set", "small", "prod", "1.0"], environment: server.environment)
        #expect(alias.status == 0 || alias.status == 8, "\(alias)")

        // Space freed: the same push now succeeds and the result verifies.
        try FileManager.default.removeItem(at: filler)
        let retried = try modelreg(["push", large.path, "large:1.0"], environment: server.environment)
        try #require(retried.status == 0, "\(retried)")
        let pulledLarge = scratch.url("pulled-large")
        let pullLarge = try modelreg(
            ["pull", "large:1.0", "--dest", pulledLarge.path], environment: server.environment)
        #expect(pullLarge.status == 0, "\(pullLarge)")
        try expectSameTree(large, pulledLarge)
        try expectEveryBlobIsWhole(data)
        #expect(
            !server.logText.contains("request failed\n"),
            "no request failed with an untyped error (a 500): \(server.logText)")
        server.stop()
    }

    /// A pull onto a disk that fills up: the file's writer thread meets ENOSPC while bytes still arrive; the
    /// pull stops with exit status 8 and one line naming the file, nothing unverified takes a pushed file's
    /// name, and once space is freed the same pull finishes.
    @Test(
        .enabled(
            if: TmpfsMount.available,
            "needs root and a mount(8) the container permits, to give the pull a small tmpfs"))
    func pullOntoAFullDiskFailsCleanlyAndResumes() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.kill() }
        let model = scratch.url("model")
        try TestModel.write(to: model, seed: 3, hidden: 512)
        let push = try modelreg(["push", model.path, "big:1"], environment: server.environment)
        try #require(push.status == 0, "\(push)")

        let volume = try TmpfsMount(at: scratch.url("volume"), size: "8m")
        defer { volume.unmount() }
        let filler = volume.directory.appendingPathComponent("filler")
        let size = try fillDisk(filler)
        try #require(truncate(filler.path, off_t(max(0, size - 1024 * 1024))) == 0)
        let destination = volume.directory.appendingPathComponent("pulled")

        let refused = try modelreg(["pull", "big:1", "--dest", destination.path], environment: server.environment)
        #expect(refused.status == 8, "\(refused)")
        let errorLine = refused.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(errorLine.hasPrefix("error: no space left") && errorLine.contains(volume.directory.path), "\(refused)")
        let pushed = try snapshot(model)
        for path in regularFiles(destination) where pushed[path] != nil {
            #expect(try Data(contentsOf: destination.appendingPathComponent(path)) == pushed[path]?.0, "\(path)")
        }

        try FileManager.default.removeItem(at: filler)
        let retried = try modelreg(["pull", "big:1", "--dest", destination.path], environment: server.environment)
        try #require(retried.status == 0, "\(retried)")
        try expectSameTree(model, destination)
        server.stop()
    }

    /// Every file under `blobs/` hashes to its name: a partial write never took a blob's name.
    private func expectEveryBlobIsWhole(_ data: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let blobs = data.appendingPathComponent("blobs")
        for path in regularFiles(blobs) {
            let bytes = try Data(contentsOf: blobs.appendingPathComponent(path))
            let hex = Digest.of(Array(bytes)).hex
            #expect(
                path.hasSuffix("/" + hex), "blob file \(path) holds other bytes (sha256 \(hex))",
                sourceLocation: sourceLocation)
        }
    }
}
