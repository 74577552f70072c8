/// POSIX tar headers (ustar, with pax extended headers for what ustar cannot hold), written with fixed
/// owner, group and time so that the same entries always give the same bytes.
enum TarHeader {
    static let blockSize = 512
    /// The largest size the 11 octal digits of a ustar header can hold (8 GiB - 1); larger sizes go in pax.
    static let maxUstarSize: Int64 = 0o77777777777
    private static let maxUstarName = 100

    enum Kind: UInt8 {
        case file = 0x30  // '0'
        case symlink = 0x32  // '2'
        case directory = 0x35  // '5'
        case paxExtended = 0x78  // 'x'
    }

    /// The header blocks of one entry: a pax header and its records when needed, then the ustar header.
    static func blocks(path: String, kind: Kind, mode: Int, size: Int64 = 0, linkTarget: String = "") -> [UInt8] {
        var records: [(String, String)] = []
        if path.utf8.count > maxUstarName { records.append(("path", path)) }
        if linkTarget.utf8.count > maxUstarName { records.append(("linkpath", linkTarget)) }
        if size > maxUstarSize { records.append(("size", String(size))) }
        var out: [UInt8] = []
        if !records.isEmpty {
            let body = records.flatMap(paxRecord)
            out += ustar(
                name: "PaxHeaders/" + String(decoding: lastComponent(path).utf8.prefix(80), as: UTF8.self),
                kind: .paxExtended, mode: 0o644,
                size: Int64(body.count), linkTarget: "")
            out += body + padding(Int64(body.count))
        }
        out += ustar(name: path, kind: kind, mode: mode, size: size > maxUstarSize ? 0 : size, linkTarget: linkTarget)
        return out
    }

    /// Zero bytes that fill `size` bytes of data up to the next block.
    static func padding(_ size: Int64) -> [UInt8] {
        let remainder = Int(size % Int64(blockSize))
        return remainder == 0 ? [] : [UInt8](repeating: 0, count: blockSize - remainder)
    }

    static let endOfArchive = [UInt8](repeating: 0, count: 2 * blockSize)

    /// `"<length> <key>=<value>\n"`, where the length counts the whole record including its own digits.
    private static func paxRecord(_ record: (String, String)) -> [UInt8] {
        let tail = " \(record.0)=\(record.1)\n"
        var length = tail.utf8.count + 1
        while String(length).utf8.count + tail.utf8.count != length { length += 1 }
        return Array((String(length) + tail).utf8)
    }

    private static func lastComponent(_ path: String) -> Substring {
        path.split(separator: "/").last ?? Substring(path)
    }

    private static func ustar(name: String, kind: Kind, mode: Int, size: Int64, linkTarget: String) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: blockSize)
        func put(_ bytes: some Collection<UInt8>, at offset: Int, width: Int) {
            for (index, byte) in bytes.prefix(width).enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int64, at offset: Int, width: Int) {
            let digits = String(value, radix: 8)
            put(
                Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8), at: offset,
                width: width - 1)
        }
        put(name.utf8, at: 0, width: 100)
        octal(Int64(mode), at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(0, at: 136, width: 12)
        header[156] = kind.rawValue
        put(linkTarget.utf8, at: 157, width: 100)
        put("ustar\0".utf8, at: 257, width: 6)
        put("00".utf8, at: 263, width: 2)
        put("root".utf8, at: 265, width: 32)
        put("root".utf8, at: 297, width: 32)
        octal(0, at: 329, width: 8)
        octal(0, at: 337, width: 8)
        // The checksum is computed with its own field read as spaces.
        put([UInt8](repeating: 0x20, count: 8), at: 148, width: 8)
        let sum = header.reduce(0) { $0 + Int64($1) }
        octal(sum, at: 148, width: 7)
        header[154] = 0
        header[155] = 0x20
        return header
    }
}
