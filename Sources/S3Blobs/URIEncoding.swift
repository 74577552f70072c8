/// Percent-encoding as SigV4 defines it: the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~` stay, every
/// other UTF-8 byte becomes `%XX` in uppercase hex. Foundation's encoders keep characters such as `$`, `+` and `=`,
/// which S3 encodes when it canonicalizes the request, so their output would sign a different request.
enum URIEncoding {
    /// `keepingSlashes` is for object paths: S3 signs the path encoded once with its `/` separators intact.
    static func encode(_ text: some StringProtocol, keepingSlashes: Bool = false) -> String {
        var encoded = ""
        encoded.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (keepingSlashes && byte == UInt8(ascii: "/")) {
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                encoded += "%" + hexString([byte], uppercase: true)
            }
        }
        return encoded
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

/// Two hex digits a byte: lowercase for hashes and signatures, uppercase for percent-encoding.
func hexString(_ bytes: some Sequence<UInt8>, uppercase: Bool = false) -> String {
    let digits = Array((uppercase ? "0123456789ABCDEF" : "0123456789abcdef").unicodeScalars)
    var hex = ""
    for byte in bytes {
        hex.unicodeScalars.append(digits[Int(byte >> 4)])
        hex.unicodeScalars.append(digits[Int(byte & 0x0F)])
    }
    return hex
}
