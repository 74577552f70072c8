import Foundation
import GRDB
import ModelRegistryCore

/// The uploads of a blob store that keeps no state of its own (S3 under the embedded metadata), in `uploads`.
/// Written straight to the pool, not through `writing`: no kept read depends on them, and every append writes
/// them. A hold is taken and checked in one statement each, as on PostgreSQL.
extension SQLiteMetadataStore: UploadRecordStore {
    private static let columns = "id, expected, byte_offset, state, updated_at"

    public func createUpload(_ record: UploadRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO uploads (\(Self.columns)) VALUES (?, ?, ?, ?, ?)",
                arguments: [
                    record.id.value, record.expected?.description, record.offset, Data(record.state),
                    Timestamp.format(record.updatedAt),
                ])
        }
    }

    public func upload(_ id: UploadID) async throws -> UploadRecord? {
        try await pool.read { db in
            try Self.records(db, "SELECT \(Self.columns) FROM uploads WHERE id = ?", [id.value]).first
        }
    }

    public func holdUpload(_ hold: UploadHold, until: Date) async throws -> UploadRecord {
        try await pool.write { db in
            let held = try Self.records(
                db,
                """
                UPDATE uploads SET holder = ?, held_until = ?
                WHERE id = ? AND (holder IS NULL OR held_until < ?) RETURNING \(Self.columns)
                """, [hold.holder, Timestamp.format(until), hold.id.value, Timestamp.now()])
            if let record = held.first { return record }
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM uploads WHERE id = ?)", arguments: [hold.id.value])
                    == true
            else { throw RegistryError.notFound("upload \(hold.id)") }
            throw Self.busy(hold.id)
        }
    }

    public func renewHold(_ hold: UploadHold, until: Date) async throws {
        try await changeHeld(hold, "UPDATE uploads SET held_until = ?", [Timestamp.format(until)])
    }

    public func saveUpload(_ record: UploadRecord, releasing hold: UploadHold) async throws {
        try await changeHeld(
            hold,
            """
            UPDATE uploads SET byte_offset = ?, state = ?, updated_at = ?, holder = NULL, held_until = NULL
            """, [record.offset, Data(record.state), Timestamp.format(record.updatedAt)])
    }

    public func releaseHold(_ hold: UploadHold) async throws {
        try await changeHeld(hold, "UPDATE uploads SET holder = NULL, held_until = NULL", [])
    }

    public func deleteUpload(_ hold: UploadHold) async throws {
        try await changeHeld(hold, "DELETE FROM uploads", [])
    }

    public func idleUpload(expecting digest: Digest) async throws -> UploadRecord? {
        try await pool.read { db in
            try Self.records(
                db,
                """
                SELECT \(Self.columns) FROM uploads WHERE expected = ? AND (holder IS NULL OR held_until < ?)
                ORDER BY updated_at DESC LIMIT 1
                """, [digest.description, Timestamp.now()]
            ).first
        }
    }

    public func idleUploads(updatedBefore cutoff: Date) async throws -> [UploadRecord] {
        try await pool.read { db in
            try Self.records(
                db,
                """
                SELECT \(Self.columns) FROM uploads
                WHERE updated_at < ? AND (holder IS NULL OR held_until < ?) ORDER BY id
                """, [Timestamp.format(cutoff), Timestamp.now()])
        }
    }

    public func allUploads() async throws -> [UploadRecord] {
        try await pool.read { db in try Self.records(db, "SELECT \(Self.columns) FROM uploads ORDER BY id", []) }
    }

    /// Runs `change` (an UPDATE or DELETE of `uploads`) on the held row; `.uploadBusy` when the hold lapsed and
    /// went to another.
    private func changeHeld(_ hold: UploadHold, _ change: String, _ arguments: StatementArguments) async throws {
        try await pool.write { db in
            try db.execute(
                sql: change + " WHERE id = ? AND holder = ?", arguments: arguments + [hold.id.value, hold.holder])
            guard db.changesCount == 1 else { throw Self.busy(hold.id) }
        }
    }

    private static func busy(_ id: UploadID) -> RegistryError {
        RegistryError(.uploadBusy, "upload \(id) is receiving bytes on another request; retry when it ends")
    }

    private static func records(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws
        -> [UploadRecord]
    {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            UploadRecord(
                id: try UploadID(row["id"] as String),
                expected: try (row["expected"] as String?).map { text throws(RegistryError) in try Digest(parsing: text)
                },
                offset: row["byte_offset"], state: Array(row["state"] as Data),
                updatedAt: try Timestamp.parse(row["updated_at"]))
        }
    }
}
