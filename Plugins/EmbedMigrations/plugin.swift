import Foundation
import PackagePlugin

/// Compiles the migrations of the target's SQL dialect (Migrations/sqlite/*.sql or Migrations/postgres/*.sql)
/// into the target, so a copied binary needs no resource folder.
@main
struct EmbedMigrations: BuildToolPlugin {
    /// The folder of each metadata backend's dialect.
    static let dialects = ["SQLiteMetadata": "sqlite", "PostgresMetadata": "postgres"]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let dialect = Self.dialects[target.name] else {
            Diagnostics.error("EmbedMigrations does not know the SQL dialect of target \(target.name)")
            return []
        }
        let directory = context.package.directoryURL.appending(path: "Migrations/\(dialect)")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) migrations",
                executable: try context.tool(named: "MigrationEmbedder").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}
