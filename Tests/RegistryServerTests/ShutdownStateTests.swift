import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import Testing

@testable import RegistryServer

@Suite struct ShutdownStateTests {
    @Test func drainingRefusesNewRequestsAndWaitsForTheOnesInFlight() async throws {
        let state = ShutdownState()
        #expect(state.enter() && state.enter())
        #expect(state.remainingDrainTime == nil)
        state.startDraining(timeout: .seconds(30))
        #expect(
            try #require(state.remainingDrainTime) > .seconds(29), "the drain deadline bounds how long a close may wait"
        )
        #expect(!state.enter(), "a new request is refused while draining")
        #expect(await state.awaitIdle(timeout: .milliseconds(50)) == false, "two requests are still in flight")
        async let drained = state.awaitIdle(timeout: .seconds(30))
        state.leave()
        state.leave()
        #expect(await drained, "the drain ends as soon as the last request leaves, not at the timeout")
        #expect(state.inFlight == 0)
    }

    @Test func readinessAndAPIAnswer503WhileHealthAndMetricsStayUp() async throws {
        try await TestRegistry.with { registry, client in
            #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
            registry.registry.shutdown.startDraining(timeout: .seconds(30))
            let ready = try await client.execute(uri: "/health/ready", method: .get)
            #expect(ready.status == .serviceUnavailable && ready.errorCode == "NOT_READY", "\(ready.text)")
            let api = try await client.execute(uri: "/v1/models", method: .get, headers: auth(registry.admin))
            #expect(api.status == .serviceUnavailable && api.errorCode == "NOT_READY", "\(api.text)")
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/metrics", method: .get).status == .ok)
        }
    }
}
