import NIOCore
import Synchronization

/// A range of an open blob file, for a server that hands the bytes from the page cache to the socket without
/// reading them (`sendfile`): nginx's way, and a quarter of the CPU a download costs the server otherwise (each
/// chunk read into memory, then copied into the socket). The file is open, so the range stays readable whatever
/// happens to the blob's path meanwhile (a garbage collection); it is closed once written, or when the region is
/// dropped unwritten.
public final class BlobFileRegion: Sendable {
    public let range: Range<Int64>
    private let handle: Mutex<NIOFileHandle?>

    /// Takes over `descriptor`, a file that holds at least `range`.
    public init(descriptor: Int32, range: Range<Int64>) {
        self.range = range
        handle = Mutex(NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor))
    }

    /// The region to write and its file, which whoever writes it closes afterwards; nil once taken.
    public func take() -> (FileRegion, NIOFileHandle)? {
        guard
            let file = handle.withLock({ handle in
                defer { handle = nil }
                return handle
            })
        else { return nil }
        let region = FileRegion(
            fileHandle: file, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
        return (region, file)
    }

    deinit {
        try? handle.withLock { $0 }?.close()
    }
}
