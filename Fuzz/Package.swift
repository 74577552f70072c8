// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for the parsers and the cache image extractor. A separate package, so the root build
// never compiles them. Every module, the root package's included, is built with AddressSanitizer and the
// coverage libFuzzer follows, on the command line (bench/fuzz.sh does):
//
//     swift build -c release --package-path Fuzz -Xswiftc -sanitize=address \
//         -Xswiftc -sanitize-coverage=edge,indirect-calls,trace-cmp,inline-8bit-counters,pc-table
//
// and only the fuzz targets link libFuzzer: `-Xswiftc -sanitize=fuzzer` would link it into the migration
// embedder too, a build tool with its own main.
//
// The root package is a path dependency, and a path dependency's identity is its directory's name, which
// is whatever the checkout is called.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map { String($0).lowercased() } ?? ""

/// A release build links SwiftPM's entry point as `main`, so each target's top-level code hands its
/// one-input function to `LLVMFuzzerRunDriver` (CFuzzer); a debug build leaves `main` to libFuzzer, which
/// calls the `LLVMFuzzerTestOneInput` the target also exports. lld, because gold stops on these links with
/// an internal error in its DWARF reader.
func fuzzTarget(_ name: String, _ products: [String], targets: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["CFuzzer"] + targets + products.map { .product(name: $0, package: root) },
        linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]
    )
}

let package = Package(
    name: "modelreg-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "CFuzzer"),
        fuzzTarget("fuzz-reference", ["ModelRegistryCore"]),
        fuzzTarget("fuzz-manifest", ["ModelRegistryCore", "ModelFormats", "CacheImage"]),
        // The three model-file targets differ only in the file's name.
        .target(
            name: "FuzzInspection",
            dependencies: [
                .product(name: "ModelRegistryCore", package: root), .product(name: "ModelFormats", package: root),
            ]
        ),
        fuzzTarget("fuzz-safetensors", [], targets: ["FuzzInspection"]),
        fuzzTarget("fuzz-gguf", [], targets: ["FuzzInspection"]),
        fuzzTarget("fuzz-config", [], targets: ["FuzzInspection"]),
        fuzzTarget("fuzz-archive", ["ModelRegistryCore", "CacheImage"]),
    ],
    swiftLanguageModes: [.v6]
)
