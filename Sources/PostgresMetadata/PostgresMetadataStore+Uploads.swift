import Foundation
import Logging
import ModelRegistryCore
import NIOCore
import PostgresNIO

/// The uploads of a blob store that keeps no state of its own (S3), shared by every replica. A hold is a
/// row's `holder` until `held_until` (times as text in one format, which compares in time order), taken and
/// checked in one statement each, so two requests never both hold an upload.
extension PostgresMetadataStore: UploadRecordStore {
    public func createUpload(_ record: UploadRecord) async throws {
        _ = try await writing { connection in
            try await connection.query(
                """
                INSERT INTO uploads (id, expected, byte_offset, state, updated_at)
                VALUES (\(record.id.value), \(record.expected?.description), \(record.offset),
                        \(ByteBuffer(bytes: record.state)), \(Timestamp.format(record.updatedAt)))
                """, logger: self.logger)
        }
    }

    public func upload(_ id: UploadID) async throws -> UploadRecord? {
        try await reading { connection in
            try await Self.records(
                connection.query(
                    "SELECT id, expected, byte_offset, state, updated_at FROM uploads WHERE id = \(id.value)",
                    logger: self.logger)
            ).first
        }
    }

    public func holdUpload(_ hold: UploadHold, until: Date) async throws -> UploadRecord {
        try await writing { connection in
            let held = try await Self.records(
                connection.query(
                    """
                    UPDATE uploads SET holder = \(hold.holder), held_until = \(Timestamp.format(until))
                    WHERE id = \(hold.id.value) AND (holder IS NULL OR held_until < \(Timestamp.now()))
                    RETURNING id, expected, byte_offset, state, updated_at
                    """, logger: self.logger))
            if let record = held.first { return record }
            let exists = try await connection.values(
                "SELECT count(*) FROM uploads WHERE id = \(hold.id.value)", Int64.self, logger: self.logger)
            guard exists.first == 0 else { throw Self.busy(hold.id) }
            throw RegistryError.notFound("upload \(hold.id)")
        }
    }

    public func renewHold(_ hold: UploadHold, until: Date) async throws {
        try await checkHeld(hold) { connection in
            try await connection.query(
                """
                UPDATE uploads SET held_until = \(Timestamp.format(until))
                WHERE id = \(hold.id.value) AND holder = \(hold.holder) RETURNING id
                """, logger: self.logger)
        }
    }

    public func saveUpload(_ record: UploadRecord, releasing hold: UploadHold) async throws {
        try await checkHeld(hold) { connection in
            try await connection.query(
                """
                UPDATE uploads SET byte_offset = \(record.offset), state = \(ByteBuffer(bytes: record.state)),
                    updated_at = \(Timestamp.format(record.updatedAt)), holder = NULL, held_until = NULL
                WHERE id = \(hold.id.value) AND holder = \(hold.holder) RETURNING id
                """, logger: self.logger)
        }
    }

    public func releaseHold(_ hold: UploadHold) async throws {
        try await checkHeld(hold) { connection in
            try await connection.query(
                """
                UPDATE uploads SET holder = NULL, held_until = NULL
                WHERE id = \(hold.id.value) AND holder = \(hold.holder) RETURNING id
                """, logger: self.logger)
        }
    }

    public func deleteUpload(_ hold: UploadHold) async throws {
        try await checkHeld(hold) { connection in
            try await connection.query(
                "DELETE FROM uploads WHERE id = \(hold.id.value) AND holder = \(hold.holder) RETURNING id",
                logger: self.logger)
        }
    }

    public func idleUpload(expecting digest: Digest) async throws -> UploadRecord? {
        try await reading { connection in
            try await Self.records(
                connection.query(
                    """
                    SELECT id, expected, byte_offset, state, updated_at FROM uploads
                    WHERE expected = \(digest.description) AND (holder IS NULL OR held_until < \(Timestamp.now()))
                    ORDER BY updated_at DESC LIMIT 1
                    """, logger: self.logger)
            ).first
        }
    }

    public func idleUploads(updatedBefore cutoff: Date) async throws -> [UploadRecord] {
        try await reading { connection in
            try await Self.records(
                connection.query(
                    """
                    SELECT id, expected, byte_offset, state, updated_at FROM uploads
                    WHERE updated_at < \(Timestamp.format(cutoff))
                        AND (holder IS NULL OR held_until < \(Timestamp.now()))
                    ORDER BY id
                    """, logger: self.logger))
        }
    }

    public func allUploads() async throws -> [UploadRecord] {
        try await reading { connection in
            try await Self.records(
                connection.query(
                    "SELECT id, expected, byte_offset, state, updated_at FROM uploads ORDER BY id", logger: self.logger)
            )
        }
    }

    /// Runs a change of the held row that returns it; `.uploadBusy` when the hold lapsed and went to another.
    private func checkHeld(
        _ hold: UploadHold, _ change: @escaping @Sendable (PostgresConnection) async throws -> PostgresRowSequence
    ) async throws {
        let changed = try await writing { connection in try await change(connection).collect().count }
        guard changed == 1 else { throw Self.busy(hold.id) }
    }

    private static func busy(_ id: UploadID) -> RegistryError {
        RegistryError(.uploadBusy, "upload \(id) is receiving bytes on another request; retry when it ends")
    }

    private static func records(_ rows: PostgresRowSequence) async throws -> [UploadRecord] {
        var records: [UploadRecord] = []
        for try await (id, expected, offset, state, updatedAt) in rows.decode(
            (String, String?, Int64, ByteBuffer, String).self)
        {
            records.append(
                UploadRecord(
                    id: try UploadID(id), expected: try expected.map { try Digest(parsing: $0) }, offset: offset,
                    state: Array(buffer: state), updatedAt: try Timestamp.parse(updatedAt)))
        }
        return records
    }
}
