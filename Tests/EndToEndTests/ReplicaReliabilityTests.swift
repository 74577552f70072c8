import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Three `serve` processes on one PostgreSQL database and one S3 bucket, under the races and faults replicas
/// meet: compare-and-swap moves spread over them, garbage collection through one while the others take
/// pushes, and a replica SIGKILLed in the middle of a push.
@Suite(.serialized) struct ReplicaReliabilityTests {
    /// 32 concurrent moves expecting the same target, spread over three replicas: exactly one wins.
    @Test func compareAndSwapMovesOverReplicasHaveOneWinner() throws {
        let storage = try SharedStorage()
        let replicas = try storage.servers(3)
        for (index, version) in ["1", "2", "3"].enumerated() {
            let model = storage.scratch.url("model-\(version)")
            try TestModel.write(to: model, seed: UInt64(index + 1))
            let push = try modelreg(["push", model.path, "org/m:\(version)"], environment: replicas[index].environment)
            try #require(push.status == 0, "\(push)")
        }
        try #require(
            try modelreg(["alias", "set", "org/m", "prod", "1"], environment: replicas[0].environment).status == 0)
        let movers = try (0..<32).map { index in
            try CommandProcess(
                ["alias", "set", "org/m", "prod", index.isMultiple(of: 2) ? "2" : "3", "--expect", "1"],
                environment: replicas[index % 3].environment)
        }
        let results = try movers.map { try $0.wait() }
        #expect(results.filter { $0.status == 0 }.count == 1, "\(results.map(\.status))")
        #expect(results.filter { $0.status == 7 }.count == 31, "\(results.filter { $0.status != 0 && $0.status != 7 })")
        let history = try modelreg(
            ["alias", "history", "org/m", "prod", "--json"], environment: replicas[2].environment)
        #expect(try history.json(HistoryJSON.self).entries.count == 2)
    }

    /// Garbage collection run again and again through one replica while the other two take pushes. With no
    /// grace period it may take a push's blobs between their upload and the publish: that push fails, naming
    /// them, and publishes nothing. With a grace period longer than a push, every push succeeds. Either way,
    /// every push that succeeded pulls whole afterwards, through the collecting replica too.
    @Test func collectingThroughOneReplicaNeverTakesAPublishedBlob() throws {
        let storage = try SharedStorage()
        let replicas = try storage.servers(3)
        var pushed: [(String, URL)] = []
        for (round, grace) in ["0s", "5m"].enumerated() {
            let done = StopFlag()
            let environment = replicas[0].environment
            let collector = Thread {
                while !done.isSet { _ = try? modelreg(["gc", "--grace", grace], environment: environment) }
            }
            collector.start()
            for index in 0..<4 {
                let (version, model) = ("\(round).\(index)", storage.scratch.url("model-\(round)-\(index)"))
                try TestModel.write(to: model, seed: UInt64(100 + round * 10 + index))
                let push = try modelreg(
                    ["push", model.path, "org/m:\(version)"], environment: replicas[1 + index % 2].environment)
                if push.status == 0 {
                    pushed.append((version, model))
                } else {
                    #expect(grace == "0s", "a push failed under a grace period: \(push)")
                    #expect(push.stderr.contains("the registry does not have"), "\(push)")
                    let show = try modelreg(["show", "org/m:\(version)"], environment: replicas[0].environment)
                    #expect(show.status == 3, "a failed push published org/m:\(version): \(show)")
                }
            }
            done.set()
            while collector.isExecuting { usleep(20_000) }
        }
        #expect(pushed.count >= 4, "\(pushed.map(\.0))")
        #expect(try modelreg(["gc", "--grace", "0s"], environment: replicas[0].environment).status == 0)
        for (version, model) in pushed {
            let destination = storage.scratch.url("pulled-\(version)")
            let pull = try modelreg(
                ["pull", "org/m:\(version)", "--dest", destination.path], environment: replicas[0].environment)
            #expect(pull.status == 0, "org/m:\(version): \(pull)")
            try expectSameTree(model, destination)
        }
    }

    /// A replica SIGKILLed while a push streams through it loses nothing it acknowledged: what it took before
    /// pulls whole through another, and the cut push, sent again through another, completes.
    @Test func aKilledReplicaLosesNothingItAcknowledged() throws {
        let storage = try SharedStorage()
        let replicas = try storage.servers(2)
        let small = storage.scratch.url("small")
        try TestModel.write(to: small)
        let acknowledged = try modelreg(["push", small.path, "org/m:1"], environment: replicas[0].environment)
        try #require(acknowledged.status == 0, "\(acknowledged)")

        let large = storage.scratch.url("large")
        try TestModel.write(to: large, seed: 2)
        var generator = SystemRandomNumberGenerator()
        try Data((0..<(24 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            .write(to: large.appendingPathComponent("extra.bin"))
        let cut = try CommandProcess(
            ["push", large.path, "org/m:2", "--no-inspect"], environment: replicas[0].environment)
        try waitUntil("the push is streaming", timeout: 60) {
            let receiving = "SELECT count(*) FROM uploads WHERE holder IS NOT NULL"
            return (try? storage.postgres.psql(receiving, database: storage.database)) ?? "0" != "0"
        }
        replicas[0].kill()
        let failed = try cut.wait()
        #expect(failed.status != 0, "\(failed)")

        let again = try modelreg(["push", large.path, "org/m:2", "--no-inspect"], environment: replicas[1].environment)
        #expect(again.status == 0, "\(again)")
        for (version, model) in [("1", small), ("2", large)] {
            let destination = storage.scratch.url("pulled-\(version)")
            let pull = try modelreg(
                ["pull", "org/m:\(version)", "--dest", destination.path], environment: replicas[1].environment)
            #expect(pull.status == 0, "\(pull)")
            try expectSameTree(model, destination)
        }
    }
}

/// Set once, read from any thread.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
