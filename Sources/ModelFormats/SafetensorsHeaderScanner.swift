import ModelRegistryCore

/// Reads a safetensors JSON header straight into tensor entries, in one pass over the bytes and with no
/// document tree: a header may hold a million tensors in 90 MB, and a tree of that (what a general JSON
/// decoder builds) takes more than ten bytes of memory a header byte and seconds of CPU a megabyte, on the
/// server at every publish. The grammar is JSON's (RFC 8259); unknown keys of a tensor entry are skipped.
struct SafetensorsHeaderScanner {
    struct Entry {
        var name: String
        var dtype: String?
        var shape: [Int64]?
        var offsets: [Int64]?
    }

    /// Nesting allowed inside the values that are skipped, so hostile input cannot exhaust the stack.
    static let maxDepth = 64
    static let maxShapeRank = 16

    private let bytes: UnsafeBufferPointer<UInt8>
    private let file: ModelFile
    private var index = 0

    /// Calls `body` with a scanner over `bytes`.
    static func scan<T>(
        _ bytes: [UInt8], _ file: ModelFile, _ body: (inout SafetensorsHeaderScanner) throws(RegistryError) -> T
    )
        throws(RegistryError) -> T
    {
        let result: Result<T, RegistryError> = bytes.withUnsafeBufferPointer { buffer in
            var scanner = SafetensorsHeaderScanner(bytes: buffer, file: file)
            do throws(RegistryError) {
                return .success(try body(&scanner))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, file: ModelFile) {
        self.bytes = bytes
        self.file = file
    }

    /// The whole header: `tensor` is called with each tensor entry in the order written (so no list of
    /// entries is held beside the caller's), and the `__metadata__` strings are returned.
    mutating func header(_ tensor: (Entry) throws(RegistryError) -> Void) throws(RegistryError) -> [String: String] {
        var metadata: [String: String] = [:]
        var seen = false
        try object { scanner, key throws(RegistryError) in
            if key == "__metadata__" {
                guard !seen else { throw scanner.file.problem("__metadata__ is given twice") }
                seen = true
                metadata = try scanner.metadata()
            } else {
                try tensor(try scanner.entry(key))
            }
        }
        skipWhitespace()
        guard index == bytes.count else { throw invalid }
        return metadata
    }

    private mutating func metadata() throws(RegistryError) -> [String: String] {
        guard peek() == UInt8(ascii: "{") else {
            try skipValue(depth: 0)
            throw file.problem("__metadata__ is not an object")
        }
        var values: [String: String] = [:]
        try object { scanner, key throws(RegistryError) in
            guard scanner.peek() == UInt8(ascii: "\"") else {
                throw scanner.file.problem("__metadata__ value '\(key.prefix(80))' is not a string")
            }
            values[key] = try scanner.string()
        }
        return values
    }

    private mutating func entry(_ name: String) throws(RegistryError) -> Entry {
        var entry = Entry(name: name)
        guard peek() == UInt8(ascii: "{") else {
            try skipValue(depth: 0)
            return entry
        }
        try object { scanner, key throws(RegistryError) in
            switch key {
            case "dtype" where scanner.peek() == UInt8(ascii: "\""):
                entry.dtype = try scanner.string()
            case "shape":
                entry.shape = try scanner.integers(limit: Self.maxShapeRank)
            case "data_offsets":
                entry.offsets = try scanner.integers(limit: 2)
            default:
                try scanner.skipValue(depth: 1)
            }
        }
        return entry
    }

    /// An array of at most `limit` integers, or nil for any other value (skipped). An element that is not
    /// an integer is -1, which every caller refuses with the entry's name.
    private mutating func integers(limit: Int) throws(RegistryError) -> [Int64]? {
        guard peek() == UInt8(ascii: "[") else {
            try skipValue(depth: 1)
            return nil
        }
        index += 1
        var values: [Int64] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return values
        }
        while true {
            skipWhitespace()
            values.append(try integer() ?? -1)
            skipWhitespace()
            switch next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "]"): return values.count <= limit ? values : nil
            default: throw invalid
            }
        }
    }

    /// Calls `member` for each key of an object, positioned at its value, which `member` must consume.
    private mutating func object(_ member: (inout SafetensorsHeaderScanner, String) throws(RegistryError) -> Void)
        throws(RegistryError)
    {
        skipWhitespace()
        guard next() == UInt8(ascii: "{") else { throw invalid }
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw invalid }
            let key = try string()
            skipWhitespace()
            guard next() == UInt8(ascii: ":") else { throw invalid }
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            switch next() {
            case UInt8(ascii: ","): continue
            case UInt8(ascii: "}"): return
            default: throw invalid
            }
        }
    }

    private mutating func skipValue(depth: Int) throws(RegistryError) {
        guard depth <= Self.maxDepth else { throw file.problem("the header nests deeper than \(Self.maxDepth) levels") }
        skipWhitespace()
        switch peek() {
        case UInt8(ascii: "{"):
            try object { scanner, _ throws(RegistryError) in try scanner.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if peek() == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                switch next() {
                case UInt8(ascii: ","): continue
                case UInt8(ascii: "]"): return
                default: throw invalid
                }
            }
        case UInt8(ascii: "\""):
            _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default:
            _ = try integer()
        }
    }

    private mutating func literal(_ word: StaticString) throws(RegistryError) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw invalid }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw invalid }
        index += count
    }

    /// A JSON number: its value when it is an integer that fits in 64 bits, nil for any other number.
    private mutating func integer() throws(RegistryError) -> Int64? {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw invalid }
        index += 1
        if first != UInt8(ascii: "0") { while let digit = peek(), isDigit(digit) { index += 1 } }
        var whole = true
        if peek() == UInt8(ascii: ".") {
            whole = false
            index += 1
            try digits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            whole = false
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            try digits()
        }
        guard whole else { return nil }
        var value: Int64 = 0
        let negative = bytes[start] == UInt8(ascii: "-")
        for position in (negative ? start + 1 : start)..<index {
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(Int64(bytes[position] - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    private mutating func digits() throws(RegistryError) {
        guard let first = peek(), isDigit(first) else { throw invalid }
        while let digit = peek(), isDigit(digit) { index += 1 }
    }

    /// A JSON string, its escapes decoded; refused when it is not valid UTF-8 or holds a lone surrogate.
    private mutating func string() throws(RegistryError) -> String {
        guard next() == UInt8(ascii: "\"") else { throw invalid }
        let start = index
        while index < bytes.count, bytes[index] != UInt8(ascii: "\""), bytes[index] != UInt8(ascii: "\\"),
            bytes[index] >= 0x20
        {
            index += 1
        }
        guard index < bytes.count else { throw invalid }
        if bytes[index] == UInt8(ascii: "\"") {
            let text = String(validating: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            index += 1
            guard let text else { throw file.problem("the header holds text that is not UTF-8") }
            return text
        }
        var decoded = Array(bytes[start..<index])
        while true {
            guard let byte = next(), byte >= 0x20 else { throw invalid }
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: decoded, as: UTF8.self) else {
                    throw file.problem("the header holds text that is not UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                try escape(into: &decoded)
            default:
                decoded.append(byte)
            }
        }
    }

    private mutating func escape(into decoded: inout [UInt8]) throws(RegistryError) {
        guard let byte = next() else { throw invalid }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(byte)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var value = UInt32(try hexQuad())
            if (0xD800..<0xDC00).contains(value) {
                guard next() == UInt8(ascii: "\\"), next() == UInt8(ascii: "u") else { throw invalid }
                let low = UInt32(try hexQuad())
                guard (0xDC00..<0xE000).contains(low) else { throw invalid }
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(value) else { throw invalid }
            decoded.append(contentsOf: Array(String(Character(scalar)).utf8))
        default:
            throw invalid
        }
    }

    private mutating func hexQuad() throws(RegistryError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard let byte = next() else { throw invalid }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw invalid
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    private var invalid: RegistryError { file.problem("the header is not valid JSON (at byte \(index) of the header)") }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func next() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
