import Foundation
import Testing

@testable import ModelRegistryCore

@Suite struct SecretComparisonTests {
    @Test func constantTimeEqualsAgreesWithEquality() {
        let token = TokenSecret.generate().value
        #expect(constantTimeEquals(token, token))
        #expect(constantTimeEquals("", ""))
        #expect(!constantTimeEquals(token, String(token.dropLast())), "a prefix is not equal")
        #expect(!constantTimeEquals(token, token + "x"))
        for index in [0, token.utf8.count / 2, token.utf8.count - 1] {
            var bytes = Array(token.utf8)
            bytes[index] ^= 0x01
            #expect(
                !constantTimeEquals(token, String(decoding: bytes, as: UTF8.self)),
                "a difference at byte \(index) is found")
        }
    }

    /// The comparison reads every byte whatever the first difference, so its cost does not tell an
    /// attacker how much of a guess was right: a guess wrong at the first byte costs as much as one wrong at
    /// the last. Measured as the best of many runs, which shrugs off scheduling noise.
    @Test func timeDoesNotDependOnWhereTheFirstDifferenceIs() {
        let secret = String(repeating: "a", count: 4096)
        let early = "b" + String(repeating: "a", count: 4095)
        let late = String(repeating: "a", count: 4095) + "b"
        func best(_ guess: String) -> Duration {
            let clock = ContinuousClock()
            var fastest = Duration.seconds(1)
            for _ in 0..<200 {
                let elapsed = clock.measure { precondition(!constantTimeEquals(secret, guess)) }
                fastest = min(fastest, elapsed)
            }
            return fastest
        }
        let earlyTime = best(early)
        let lateTime = best(late)
        let ratio = Double(earlyTime.components.attoseconds) / Double(lateTime.components.attoseconds)
        #expect(ratio > 0.5 && ratio < 2, "first difference at byte 0: \(earlyTime), at the last byte: \(lateTime)")
    }
}
