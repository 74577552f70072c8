import GRDB
import ModelRegistryCore

extension RegistryError {
    /// The typed error for a failure that a full disk explains, else nil. SQLite reports a full disk as
    /// SQLITE_FULL (a write to the database or its WAL found no space); the client must be told to free
    /// space (507), not that the server broke (500).
    public static func insufficientStorage(from error: any Error) -> RegistryError? {
        if let error = error as? RegistryError { return error.code == .insufficientStorage ? error : nil }
        guard let error = error as? DatabaseError, error.resultCode == .SQLITE_FULL else { return nil }
        return RegistryError(
            .insufficientStorage,
            "no space left to write the registry's database: free disk space on the server's data volume and retry"
        )
    }
}
