import Foundation
import Testing

@testable import S3Blobs

struct AMZTimestampTests {
    @Test(arguments: [
        (0.0, "19700101T000000Z"),
        (0.999, "19700101T000000Z"),
        (-0.5, "19691231T235959Z"),
        (-86_400.0, "19691231T000000Z"),
        (951_782_400.0, "20000229T000000Z"),
        (1_369_353_600.0, "20130524T000000Z"),
        (1_709_251_199.0, "20240229T235959Z"),
        (4_107_542_400.0, "21000301T000000Z"),
    ])
    func knownInstants(seconds: Double, dateTime: String) {
        let timestamp = AMZTimestamp(Date(timeIntervalSince1970: seconds))
        #expect(timestamp.dateTime == dateTime)
        #expect(timestamp.day == String(dateTime.prefix(8)))
    }

    /// Against Foundation's Gregorian calendar in UTC, every 1 day, 1 hour, 1 minute and 1 second from 1900 to 2200,
    /// so that every month, hour, minute and second and the century leap-year rules come round.
    @Test func agreesWithTheGregorianCalendar() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
        let step = 86_400.0 + 3_600 + 60 + 1
        var seconds = -2_208_988_800.0  // 1900-01-01
        while seconds < 7_258_118_400 {  // 2200-01-01
            let date = Date(timeIntervalSince1970: seconds)
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let fields: [Int] = [parts.year, parts.month, parts.day, parts.hour, parts.minute, parts.second]
                .map { $0 ?? -1 }
            let expected = String(format: "%04d%02d%02dT%02d%02d%02dZ", arguments: fields)
            let actual = AMZTimestamp(date).dateTime
            #expect(actual == expected, "\(seconds)")
            if actual != expected { return }
            seconds += step
        }
    }
}
