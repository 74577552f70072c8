import Testing

@testable import ModelRegistryCore

/// The release rules on their own, without a store.
struct ReleaseRulesTests {
    func entry(_ action: AliasHistoryEntry.Action, _ version: String) throws -> AliasHistoryEntry {
        AliasHistoryEntry(
            id: 0, alias: try AliasName("prod"), action: action, toVersion: try VersionName(version), actor: "t",
            at: "")
    }

    /// Replaying the history: a rollback drops the moves it went back over, so a second rollback goes on
    /// backwards instead of forth again.
    @Test func aRollbackUndoesTheMovesItWentBackOver() throws {
        let history = [
            try entry(.set, "1"), try entry(.set, "2"), try entry(.set, "3"), try entry(.rollback, "2"),
            try entry(.set, "4"), try entry(.rollback, "2"),
        ]
        #expect(ReleaseRules.rollbackStack(history).map(\.version.value) == ["1", "2"])
        #expect(ReleaseRules.rollbackStack([]).isEmpty)
    }

    @Test func aRollbackGoesToTheTargetBeforeTheCurrentOneOrTheOneNamed() throws {
        let model = try ModelName("m")
        let prod = try AliasName("prod")
        let current = AliasTarget(
            name: prod, version: try VersionName("3"), variant: nil, updatedAt: "", updatedBy: "t")
        let history = [try entry(.set, "1"), try entry(.set, "2"), try entry(.set, "3")]
        func rollback(to version: String?) throws -> String {
            let move = AliasMove(
                model: model, alias: prod, kind: .rollback(to: try version.map { try VersionName($0) }), actor: "t")
            return try ReleaseRules.destination(of: move, current: current, aliases: [current]) { history }
                .target.version.value
        }
        #expect(try rollback(to: nil) == "2")
        #expect(try rollback(to: "1") == "1")
        #expect(throws: RegistryError.self) { try rollback(to: "3") }
        let move = AliasMove(model: model, alias: prod, kind: .rollback(to: nil), actor: "t")
        #expect(throws: RegistryError.self) {
            try ReleaseRules.destination(of: move, current: nil, aliases: []) { [] }
        }
    }

    @Test func aCompareAndSwapHoldsOnlyWhereExpected() throws {
        let prod = try AliasName("prod")
        let current = AliasTarget(
            name: prod, version: try VersionName("1"), variant: nil, updatedAt: "", updatedBy: "t")
        func move(_ expectation: AliasExpectation) throws -> AliasMove {
            AliasMove(
                model: try ModelName("m"), alias: prod, kind: .set(try VersionName("2"), variant: nil),
                expectation: expectation, actor: "t")
        }
        try ReleaseRules.checkExpectation(of: move(.target(try VersionName("1"), variant: nil)), current: current)
        try ReleaseRules.checkExpectation(of: move(.absent), current: nil)
        let moved = #expect(throws: RegistryError.self) {
            try ReleaseRules.checkExpectation(
                of: move(.target(try VersionName("1"), variant: try VariantName("q4"))), current: current)
        }
        #expect(moved?.code == .aliasMoved)
        #expect(throws: RegistryError.self) { try ReleaseRules.checkExpectation(of: move(.absent), current: current) }
        #expect(throws: RegistryError.self) {
            try ReleaseRules.checkMovable(
                AliasMove(
                    model: try ModelName("m"), alias: .latest, kind: .set(try VersionName("1"), variant: nil),
                    actor: "t"))
        }
    }

    @Test func theVariantIsTheOneAskedForTheOnlyOneOrDefault() throws {
        let (model, version) = (try ModelName("m"), try VersionName("1"))
        let reference = try ModelReference(parsing: "m:1")
        func choose(_ requested: String?, _ variants: [String]) throws -> String {
            try ReleaseRules.chooseVariant(
                try requested.map { try VariantName($0) }, among: try variants.map { try VariantName($0) }, of: model,
                version, shownAs: reference
            ).value
        }
        #expect(try choose(nil, ["q4"]) == "q4")
        #expect(try choose(nil, ["default", "q4"]) == "default")
        #expect(try choose("q4", ["default", "q4"]) == "q4")
        let ambiguous = #expect(throws: RegistryError.self) { try choose(nil, ["fp16", "q4"]) }
        #expect(ambiguous?.code == .ambiguousVariant)
        let missing = #expect(throws: RegistryError.self) { try choose("q8", ["fp16", "q4"]) }
        #expect(missing?.code == .notFound && missing?.message.contains("it has: fp16, q4") == true)
    }
}
