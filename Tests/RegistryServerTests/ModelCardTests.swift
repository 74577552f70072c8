import Foundation
import Testing

@testable import RegistryServer

/// A model card's metadata block, read as the Hub's `cardData`.
@Suite struct ModelCardTests {
    @Test func aTypicalCardIsReadWhole() throws {
        let card = """
            ---
            license: apache-2.0
            language:
            - en
            - fr
            tags: [text-generation, "llama"]
            base_model: meta-llama/Llama-3-8B  # the parent
            inference: false
            widget: null
            params: 8
            score: 0.5
            quoted: 'a: b'
            model-index:
            - name: tiny
              results:
              - task:
                  type: text-generation
                metrics:
                  - type: accuracy
                    value: 0.5
            ---
            # Tiny

            key: not metadata
            """
        let metadata = try #require(ModelCard.metadata(card))
        #expect(
            metadata
                == .map([
                    "license": .string("apache-2.0"), "language": .list([.string("en"), .string("fr")]),
                    "tags": .list([.string("text-generation"), .string("llama")]),
                    "base_model": .string("meta-llama/Llama-3-8B"), "inference": .bool(false), "widget": .null,
                    "params": .integer(8), "score": .number(0.5), "quoted": .string("a: b"),
                    "model-index": .list([
                        .map([
                            "name": .string("tiny"),
                            "results": .list([
                                .map([
                                    "task": .map(["type": .string("text-generation")]),
                                    "metrics": .list([.map(["type": .string("accuracy"), "value": .number(0.5)])]),
                                ])
                            ]),
                        ])
                    ]),
                ]))
    }

    @Test func aCardWithoutAMetadataBlockHasNone() {
        #expect(ModelCard.metadata("# Title\n\n---\nlicense: mit\n---\n") == nil)
        #expect(ModelCard.metadata("---\nlicense: mit\n") == nil, "a block that never ends")
        #expect(ModelCard.metadata("---\r\nlicense: mit\r\n---\r\n") == .map(["license": .string("mit")]))
    }

    /// Lines it cannot read are left out; the rest still counts.
    @Test func unreadableLinesAreLeftOut() {
        #expect(
            ModelCard.metadata("---\njust words\nlicense: mit\n   stray: indent\nother: x\n---\n")
                == .map(["license": .string("mit"), "other": .string("x")]))
    }
}
