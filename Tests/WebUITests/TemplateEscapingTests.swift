import Foundation
import ModelFormats
import ModelRegistryCore
import Testing

@testable import WebUI

/// Every string a user can choose reaches the pages escaped: file paths, reasons, token names, card text.
@Suite struct TemplateEscapingTests {
    static let hostile = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"

    let renderer = PageRenderer()

    static func manifest(paths: [String], quantization: Quantization? = nil) throws -> Manifest {
        Manifest(
            format: .safetensors,
            files: try paths.map {
                try ManifestFile(path: ManifestPath($0), digest: Digest.of(Array($0.utf8)), size: 10)
            },
            quantization: quantization,
            metadata: ModelMetadata(
                architecture: hostile, parameterCount: 1_500_000_000, dtypeBytes: ["BF16": 3_000_000_000],
                weightBytes: 3_000_000_000, torchDtype: "bfloat16", contextLength: 4096, layers: 28, hiddenSize: 1536,
                attentionHeads: 12, kvHeads: 2, headDim: 128, kvCacheBytesPerToken: 28_672, weightFiles: [:]))
    }

    static func stored(_ manifest: Manifest, reason: String? = nil) throws -> StoredManifest {
        StoredManifest(
            model: try ModelName("org/tiny"), version: try VersionName("1.0"), variant: try VariantName("default"),
            digest: manifest.digest, bytes: manifest.canonicalJSON(),
            deprecation: reason.map { Deprecation(at: "2026-12-05T10:00:00Z", by: "ci", reason: $0) })
    }

    /// No tag a hostile string carries survives into the page: it shows as text.
    static func expectNoInjection(_ html: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!html.contains("<script>alert"), sourceLocation: sourceLocation)
        #expect(!html.contains("<img"), sourceLocation: sourceLocation)
        #expect(!html.contains("onerror=alert(2)>"), sourceLocation: sourceLocation)
    }

    @Test func aHostileFilePathReasonAndArchitectureShowAsText() throws {
        let manifest = try Self.manifest(paths: ["weights/" + Self.hostile.replacing("/", with: "_") + ".bin"])
        let page = VariantPage(
            stored: try Self.stored(manifest, reason: Self.hostile), manifest: manifest, card: nil,
            origin: "http://127.0.0.1:1", viewer: Viewer(name: Self.hostile, canWrite: true, csrfToken: "t"))
        let html = renderer.render(page)
        Self.expectNoInjection(html)
        #expect(html.contains("&lt;script&gt;alert(1)&lt;_script&gt;"))
        #expect(html.contains("&quot;&#39;&gt;&lt;img src=x onerror=alert(2)&gt;"))
    }

    @Test func aHostileCardIsTextButItsMarkdownIsRendered() throws {
        let manifest = try Self.manifest(paths: ["README.md"])
        let card = """
            ---
            license: apache-2.0
            ---
            # Tiny <b>model</b>

            Some **bold** and *soft* text with `<code>` and a [safe link](https://example.com/a?b=1&c=2).
            A [bad link](javascript:alert(3)) and ![an image](https://tracker.example/pixel.png).
            <script>alert(4)</script>
            <a href="javascript:alert(5)">raw</a>

            - one
            - two

            | k | v |
            |---|---|
            | <i>x</i> | 1 |

            ```
            <script>alert(6)</script>
            ```
            """
        let page = VariantPage(
            stored: try Self.stored(manifest), manifest: manifest, card: card, origin: "http://h", viewer: .anonymous)
        let html = renderer.render(page)
        #expect(!html.contains("<script>alert"))
        #expect(!html.contains("<b>model"))
        #expect(!html.contains("<i>x"))
        #expect(!html.contains("href=\"javascript"))
        #expect(!html.contains("<img"))
        #expect(!html.contains("license: apache"))
        #expect(html.contains("<h3>Tiny &lt;b&gt;model&lt;/b&gt;</h3>"))
        #expect(html.contains("<strong>bold</strong>"))
        #expect(html.contains("<em>soft</em>"))
        #expect(html.contains("<code>&lt;code&gt;</code>"))
        #expect(
            html.contains(
                "<a href=\"https://example.com/a?b=1&amp;c=2\" rel=\"nofollow noopener noreferrer\">safe link</a>"))
        #expect(html.contains("bad link"))
        #expect(html.contains("<ul><li>one</li><li>two</li></ul>"))
        #expect(html.contains("<td>&lt;i&gt;x&lt;/i&gt;</td>"))
        #expect(html.contains("<pre><code>&lt;script&gt;alert(6)&lt;/script&gt;</code></pre>"))
    }

    @Test func theCatalogueFiltersAndEscapes() throws {
        let detail = ModelDetail(
            name: try ModelName("org/tiny"), createdAt: "2026-12-05T10:00:00Z",
            versions: [
                VersionSummary(
                    name: try VersionName("2"), createdAt: "2026-12-05T10:00:00Z", size: 3 << 30,
                    variants: [
                        VariantSummary(
                            name: try VariantName("awq-int4"), digest: Digest.of([1]), format: .safetensors,
                            size: 3 << 30, fileCount: 3, createdAt: "2026-12-05T10:00:00Z", createdBy: "ci")
                    ], aliases: [try AliasName("prod")],
                    deprecation: Deprecation(at: "2026-12-05T11:00:00Z", by: "ci", reason: Self.hostile))
            ],
            aliases: [
                AliasTarget(
                    name: try AliasName("prod"), version: try VersionName("2"), variant: try VariantName("awq-int4"),
                    updatedAt: "2026-12-05T10:00:00Z", updatedBy: Self.hostile)
            ])
        let quantized = try Self.manifest(paths: ["a.safetensors"], quantization: Quantization(method: "awq", bits: 4))
        let model = CataloguePage.Model(
            detail: detail, latestVersion: nil, newestManifests: [try VariantName("awq-int4"): quantized])
        let all = renderer.render(CataloguePage(models: [model], filter: "", viewer: .anonymous))
        #expect(all.contains("href=\"/ui/models/org/tiny\""))
        #expect(all.contains("prod → 2 (awq-int4)"))
        #expect(all.contains("awq 4-bit"))
        #expect(all.contains("3.0 GiB"))
        #expect(all.contains("deprecated"))
        let none = renderer.render(CataloguePage(models: [model], filter: "\"><script>", viewer: .anonymous))
        #expect(!none.contains("org/tiny\""))
        #expect(none.contains("value=\"&quot;&gt;&lt;script&gt;\""))
        #expect(none.contains("No model&#39;s name contains") || none.contains("No model's name contains"))
        let some = renderer.render(CataloguePage(models: [model], filter: "TIN", viewer: .anonymous))
        #expect(some.contains("href=\"/ui/models/org/tiny\""))
    }

    @Test func formsCarryTheSessionsCSRFTokenAndTheTargetTheyWereShown() throws {
        let name = try ModelName("tiny")
        let version = VersionSummary(
            name: try VersionName("1"), createdAt: "t", size: 1,
            variants: [
                VariantSummary(
                    name: .default, digest: Digest.of([2]), format: .safetensors, size: 1, fileCount: 1, createdAt: "t",
                    createdBy: "ci")
            ], aliases: [try AliasName("prod")])
        let detail = ModelDetail(
            name: name, createdAt: "t", versions: [version],
            aliases: [
                AliasTarget(name: try AliasName("prod"), version: try VersionName("1"), updatedAt: "t", updatedBy: "ci")
            ])
        let moves = [
            AliasHistoryEntry(
                id: 1, alias: try AliasName("prod"), action: .set, toVersion: try VersionName("1"),
                actor: "first-mover", at: "t1"),
            AliasHistoryEntry(
                id: 2, alias: try AliasName("prod"), action: .rollback, fromVersion: try VersionName("2"),
                toVersion: try VersionName("1"), actor: "second-mover", at: "t2"),
        ]
        let page = ModelPage(
            detail: detail, manifests: [:], histories: [try AliasName("prod"): moves], images: [],
            calculator: Calculator(), calculatorText: FormBody(""), calculatorError: nil, origin: "http://h:1",
            viewer: Viewer(name: "ops", canWrite: true, csrfToken: "abc123"))
        let html = renderer.render(page)
        let newest = try #require(html.range(of: "second-mover"))
        let oldest = try #require(html.range(of: "first-mover"))
        #expect(newest.lowerBound < oldest.lowerBound, "the history is not newest first")
        #expect(html.components(separatedBy: "name=\"csrf\" value=\"abc123\"").count - 1 >= 5)
        #expect(html.contains("name=\"expect\" value=\"1\""))
        #expect(html.contains("action=\"/ui/models/tiny/aliases/prod\""))
        #expect(html.contains("MODELREG_URL=http://h:1 modelreg fetch tiny@prod --dest /models"))
        let reader = renderer.render(
            ModelPage(
                detail: detail, manifests: [:], histories: [:], images: [], calculator: Calculator(),
                calculatorText: FormBody(""), calculatorError: nil, origin: "http://h:1", viewer: .anonymous))
        #expect(!reader.contains("method=\"post\""))
    }
}
