import ModelFormats
import ModelRegistryCore
import Testing

@testable import WebUI

/// What the pages compute besides escaping: the audit log's paging and the calculator's fields.
@Suite struct PageModelTests {
    static func entries(_ ids: ClosedRange<Int64>) throws -> [AuditEntry] {
        try ids.reversed().map {
            AuditEntry(
                id: $0, at: "t", actor: "ci", action: .aliasSet, model: try ModelName("org/tiny"),
                target: "org/tiny@prod")
        }
    }

    @Test func aFullPageOfTheAuditLogLinksToTheOlderEntries() throws {
        let model = try ModelName("org/tiny")
        let full = AuditPage(entries: try Self.entries(51...100), model: model, pageSize: 50, viewer: .anonymous)
        #expect(full.olderHref == "/ui/audit?model=org%2Ftiny&before=51")
        #expect(full.entries.first?.modelHref == "/ui/models/org/tiny")
        let last = AuditPage(entries: try Self.entries(1...7), model: nil, pageSize: 50, viewer: .anonymous)
        #expect(last.olderHref == nil)
        let html = PageRenderer().render(full)
        #expect(html.contains("href=\"/ui/audit?model=org%2Ftiny&amp;before=51\""))
    }

    @Test func theCalculatorReadsItsFieldsAndNamesTheOnesThatDoNot() {
        let (calculator, error) = Calculator.parse(FormBody("gpu=24GiB&context=8192&concurrency=4&kv=fp8"))
        #expect(
            calculator
                == Calculator(gpuMemory: 24 << 30, contextLength: 8192, concurrency: 4, kvCacheDtype: .fp8))
        #expect(error == nil)
        let (empty, none) = Calculator.parse(FormBody("gpu=&context=&concurrency=&kv=auto"))
        #expect(empty == Calculator() && none == nil)
        let (_, refused) = Calculator.parse(FormBody("gpu=lots&context=-1&concurrency=x&kv=int3"))
        let message = refused ?? ""
        #expect(message.contains("invalid size 'lots'") && message.contains("context must be a positive"))
        #expect(message.contains("concurrency must be") && message.contains("KV cache dtype must be one of auto"))
    }

    @Test func pathsFollowTheAPIsShape() throws {
        #expect(WebPaths.model(try ModelName("org/tiny")) == "/ui/models/org/tiny")
        #expect(
            WebPaths.variant(try ModelName("tiny"), try VersionName("1.0"), try VariantName("awq-int4"))
                == "/ui/models/tiny/versions/1.0/variants/awq-int4")
        #expect(WebPaths.alias(try ModelName("tiny"), try AliasName("prod")) == "/ui/models/tiny/aliases/prod")
    }
}
