/// The release rules every metadata backend applies: the backend reads the state inside its transaction,
/// these decide, and the backend writes what they decided in the same transaction. A second backend then
/// shares the behaviour instead of copying it.
public enum ReleaseRules {
    /// `@latest` is computed, never moved.
    public static func checkMovable(_ move: AliasMove) throws(RegistryError) {
        guard move.alias != .latest else {
            throw RegistryError(
                .invalidName,
                "'latest' is not an alias that can be moved: @latest is always the newest version that is not deprecated"
            )
        }
    }

    /// A compare-and-swap holds only when the alias is where the mover expects it.
    public static func checkExpectation(of move: AliasMove, current: AliasTarget?) throws(RegistryError) {
        guard let expectation = move.expectation else { return }
        let holds =
            switch expectation {
            case .absent: current == nil
            case .target(let version, let variant): current?.version == version && current?.variant == variant
            }
        guard holds else {
            throw RegistryError.aliasMoved(move.model, move.alias, current: current, expected: expectation)
        }
    }

    /// Where a move takes the alias. `aliases` are the model's aliases; `history` loads the alias's moves,
    /// oldest first, which only a rollback needs.
    public static func destination(
        of move: AliasMove, current: AliasTarget?, aliases: [AliasTarget],
        history: () throws -> [AliasHistoryEntry]
    ) throws -> AliasDestination {
        switch move.kind {
        case .set(let version, let variant):
            return AliasDestination(target: ReleaseTarget(version: version, variant: variant), action: .set)
        case .promote(let source):
            guard source != move.alias else {
                throw RegistryError(.invalidRequest, "cannot promote \(move.model)@\(source) to itself")
            }
            guard let from = aliases.first(where: { $0.name == source }) else {
                throw RegistryError.notFound("alias '\(source)' of model \(move.model)")
            }
            return AliasDestination(
                target: ReleaseTarget(version: from.version, variant: from.variant), action: .promote,
                note: " (promoted from @\(source))")
        case .rollback(let requested):
            guard current != nil else { throw RegistryError.notFound("alias '\(move.alias)' of model \(move.model)") }
            var stack = rollbackStack(try history())
            stack.removeLast()
            let found = requested.map { version in stack.lastIndex { $0.version == version } } ?? stack.indices.last
            guard let index = found else {
                let reason =
                    requested.map { "never pointed to \($0) before its current target" }
                    ?? "has no earlier target to roll back to"
                throw RegistryError(
                    .conflict, "\(move.model)@\(move.alias) \(reason): use `modelreg alias set` to move it forward")
            }
            return AliasDestination(target: stack[index], action: .rollback)
        }
    }

    /// The targets a rollback walks back through, current last: the alias's moves replayed, each rollback
    /// undoing the moves it went back over.
    public static func rollbackStack(_ history: [AliasHistoryEntry]) -> [ReleaseTarget] {
        var stack: [ReleaseTarget] = []
        for entry in history {
            let target = ReleaseTarget(version: entry.toVersion, variant: entry.toVariant)
            if entry.action == .rollback, let index = stack.lastIndex(of: target) {
                stack.removeSubrange((index + 1)...)
            } else {
                stack.append(target)
            }
        }
        return stack
    }

    /// The audit log's detail of a move from `current`.
    public static func moveDetail(from current: AliasTarget?, to destination: AliasDestination) -> String {
        let from = current.map { ReleaseTarget(version: $0.version, variant: $0.variant).description } ?? "(new)"
        return "\(from) -> \(destination.target)" + destination.note
    }

    /// A version an alias points to cannot be deleted.
    public static func checkDeletable(_ model: ModelName, _ version: VersionName, aliases: [AliasTarget])
        throws(RegistryError)
    {
        let pointing = aliases.filter { $0.version == version }
        guard pointing.isEmpty else {
            let names = pointing.map { "@\($0.name)" }.joined(separator: ", ")
            throw RegistryError(
                .conflict, "\(model):\(version) is the target of \(names): move or roll back those aliases first")
        }
    }

    /// A reference must name a release, and one pinned by digest takes no variant besides.
    public static func checkResolvable(_ reference: ModelReference, variant requested: VariantName?)
        throws(RegistryError)
    {
        switch reference.target {
        case .model:
            throw RegistryError(
                .invalidReference,
                "reference '\(reference)' names no release: use NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>")
        case .digest where requested != nil:
            throw RegistryError(
                .invalidRequest, "'\(reference)' already pins one variant by digest: drop the variant option")
        default:
            return
        }
    }

    /// The variant a reference to a version resolves to: the one asked for, else the only one, else
    /// `default`; several without a default is ambiguous. `variants` are the version's, in name order.
    public static func chooseVariant(
        _ requested: VariantName?, among variants: [VariantName], of model: ModelName, _ version: VersionName,
        shownAs reference: ModelReference
    ) throws(RegistryError) -> VariantName {
        let names = variants.map(\.value).joined(separator: ", ")
        if let requested {
            guard variants.contains(requested) else {
                throw RegistryError.notFound("variant '\(requested)' of \(model):\(version) (it has: \(names))")
            }
            return requested
        }
        if variants.count == 1 { return variants[0] }
        if variants.contains(.default) { return .default }
        throw RegistryError(
            .ambiguousVariant, "\(reference) has several variants (\(names)): choose one with --variant")
    }
}

/// Where an alias move goes, how the history names it, and what the audit log adds.
public struct AliasDestination: Sendable, Equatable {
    public var target: ReleaseTarget
    public var action: AliasHistoryEntry.Action
    public var note: String

    public init(target: ReleaseTarget, action: AliasHistoryEntry.Action, note: String = "") {
        self.target = target
        self.action = action
        self.note = note
    }

    public var auditAction: AuditEntry.Action {
        switch action {
        case .set: .aliasSet
        case .promote: .aliasPromote
        case .rollback: .aliasRollback
        }
    }
}

/// A version, and optionally one of its variants, that an alias points to.
public struct ReleaseTarget: Sendable, Equatable, CustomStringConvertible {
    public var version: VersionName
    public var variant: VariantName?

    public init(version: VersionName, variant: VariantName?) {
        self.version = version
        self.variant = variant
    }

    public var description: String { version.value + (variant.map { "/\($0)" } ?? "") }
}
