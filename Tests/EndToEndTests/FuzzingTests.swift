import Foundation
import TestServers
import Testing

/// A CI-sized run of the libFuzzer targets in Fuzz/ through `bench/fuzz.sh`: it builds them (AddressSanitizer
/// and coverage) and fuzzes each for `MODELREG_FUZZ_SECONDS` (default 15) seconds. Any crash, leak, hang or
/// out-of-memory input fails the test, with the input left in Fuzz/.build-artifacts/<target>/.
@Suite struct FuzzingTests {
    static let targets = [
        "fuzz-reference", "fuzz-manifest", "fuzz-safetensors", "fuzz-gguf", "fuzz-config", "fuzz-archive",
    ]

    /// The first build of Fuzz/ compiles the dependencies again, with the sanitizer: 7 to 8 minutes on two
    /// busy cores, hence the generous limit; later builds take seconds.
    @Test(.timeLimit(.minutes(30))) func everyTargetRunsWithoutFindings() throws {
        let seconds = ProcessInfo.processInfo.environment["MODELREG_FUZZ_SECONDS"] ?? "15"
        let scratch = try Scratch()
        let output = scratch.url("stdout")
        let errors = scratch.url("stderr")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errors.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", repositoryRoot.appendingPathComponent("bench/fuzz.sh").path, seconds]
        // A debug build of Fuzz/ compiles faster than bench/fuzz.sh's release default, and a 15 s run is a
        // smoke run either way; FUZZ_CONFIGURATION=release fuzzes the optimised code.
        var environment = ProcessInfo.processInfo.environment
        environment["FUZZ_CONFIGURATION"] = environment["FUZZ_CONFIGURATION"] ?? "debug"
        process.environment = environment
        // Through files, so the build's output cannot fill a pipe and stall the script.
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.runAlone()
        process.waitUntilExit()
        let table = try String(contentsOf: output, encoding: .utf8)
        let log = try String(contentsOf: errors, encoding: .utf8)
        #expect(process.terminationStatus == 0, "\(table)\n\(log.suffix(6000))")

        // target, seconds, runs, corpus, crashes
        let rows = table.split(separator: "\n").map { $0.split(separator: " ") }.filter {
            $0.count == 5 && Self.targets.contains(String($0[0]))
        }
        #expect(rows.map { String($0[0]) } == Self.targets, "\(table)")
        for row in rows {
            #expect((Int(row[2]) ?? 0) > 0, "\(row[0]) executed no input: \(table)")
            #expect(row[4] == "0", "\(row[0]) found something: \(table)\n\(log.suffix(6000))")
        }
    }
}
