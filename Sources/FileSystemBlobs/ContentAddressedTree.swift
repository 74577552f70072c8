import FileSystemIO
import Foundation
import ModelRegistryCore

/// A file of a content-addressed tree `<root>/<2 hex>/<64 hex>`.
public struct BlobFile: Sendable {
    public var digest: Digest
    public var path: String
    public var size: Int64
    public var modified: Date
}

/// A content-addressed tree of files, `<root>/<2 hex>/<64 hex>`: the blob store's and a backup repository's.
public enum ContentAddressedTree {
    /// Every file named like a blob under a content-addressed tree; other names are left alone.
    public static func files(in root: URL) throws(RegistryError) -> [BlobFile] {
        var files: [BlobFile] = []
        for prefix in try POSIXFile.entries(root.path) where prefix.utf8.count == 2 {
            let directory = root.path + "/" + prefix
            for name in try POSIXFile.entries(directory) where name.hasPrefix(prefix) {
                guard let digest = try? Digest(parsing: Digest.prefix + name) else { continue }
                let path = directory + "/" + name
                guard let status = try POSIXFile.status(path) else { continue }
                files.append(BlobFile(digest: digest, path: path, size: status.size, modified: status.modified))
            }
        }
        return files.sorted { $0.digest < $1.digest }
    }
}
