import Foundation

/// An upload of a blob store whose bytes go somewhere that keeps no state of its own (an object store's
/// multipart upload): what any replica needs to continue it, kept in a store they share.
public struct UploadRecord: Sendable, Equatable {
    public var id: UploadID
    /// The digest the client said the bytes hash to, if it did: a client that lost its connection asks
    /// for an upload of this digest and is handed this one back.
    public var expected: Digest?
    /// Bytes received.
    public var offset: Int64
    /// The blob store's own state (where the bytes went so far, and its hash state), opaque to the record
    /// store.
    public var state: [UInt8]
    public var updatedAt: Date

    public init(id: UploadID, expected: Digest?, offset: Int64, state: [UInt8], updatedAt: Date) {
        self.id = id
        self.expected = expected
        self.offset = offset
        self.state = state
        self.updatedAt = updatedAt
    }
}

/// A request's hold on an upload: while it lasts (it is renewed as bytes arrive), no other request, on any
/// replica, appends to, commits, cancels or sweeps the upload. A replica killed while holding one holds it
/// until it lapses.
public struct UploadHold: Sendable, Equatable {
    public var id: UploadID
    public var holder: String

    public init(id: UploadID, holder: String = UUID().uuidString) {
        self.id = id
        self.holder = holder
    }
}

/// Where replicas keep their uploads' records (`UploadRecord`) and the holds on them.
public protocol UploadRecordStore: Sendable {
    func createUpload(_ record: UploadRecord) async throws
    /// The record; nil when there is none.
    func upload(_ id: UploadID) async throws -> UploadRecord?
    /// Holds the upload until `until` and returns its record: `.notFound` without one, `.uploadBusy` when
    /// another hold on it has not lapsed.
    func holdUpload(_ hold: UploadHold, until: Date) async throws -> UploadRecord
    /// Extends a hold this request has; `.uploadBusy` if it lapsed and another took the upload.
    func renewHold(_ hold: UploadHold, until: Date) async throws
    /// Saves the upload's progress and lets go of the hold.
    func saveUpload(_ record: UploadRecord, releasing hold: UploadHold) async throws
    /// Lets go of the hold, the record unchanged.
    func releaseHold(_ hold: UploadHold) async throws
    /// Removes the record of a held upload.
    func deleteUpload(_ hold: UploadHold) async throws
    /// The newest upload of `digest` that nobody holds.
    func idleUpload(expecting digest: Digest) async throws -> UploadRecord?
    /// Uploads nobody holds that were last updated before `cutoff`.
    func idleUploads(updatedBefore cutoff: Date) async throws -> [UploadRecord]
    /// Every upload, held or not.
    func allUploads() async throws -> [UploadRecord]
}
