import ForkliftIPC
@testable import ForkliftMaster
import Testing

/// How long the master keeps keyed data sets: while a host that uses one lives.
@Suite struct SharedDataSetsTests {
    let numbers = DataSetIdentity(instance: "dict", plugin: "dictionary", key: "words-1")
    let placement = DataSetPlacement(address: 0x6000_0000_0000, size: 4 << 20)

    @Test func aSetLivesWhileAnyHostUsesItAndGoesWithTheLast() {
        var sets = SharedDataSets()
        let id = sets.built(by: 100, pool: "www", generation: 1, identity: numbers, placement: placement)
        #expect(sets.offers(for: "www").map(\.id) == [id])
        #expect(sets.offers(for: "api").isEmpty, "a pool is offered its own sets only")
        sets.handedOn([id], to: 200) // generation 2 maps it
        #expect(sets.hostExited(100).isEmpty, "generation 1 drained: generation 2 still maps it")
        #expect(sets.offers(for: "www").map(\.id) == [id], "and generation 3 may inherit it too")
        #expect(sets.hostExited(200) == [id], "the last user gone: released")
        #expect(sets.entries.isEmpty)
    }

    @Test func aHostThatDidNotUseASetReleasesItsHoldAtOnce() {
        var sets = SharedDataSets()
        let old = sets.built(by: 100, pool: "www", generation: 1, identity: numbers, placement: placement)
        sets.handedOn([old], to: 200)
        let newKey = DataSetIdentity(instance: "dict", plugin: "dictionary", key: "words-2")
        let new = sets.built(by: 200, pool: "www", generation: 2, identity: newKey, placement: DataSetPlacement(address: placement.end, size: 4096))
        #expect(sets.unused(old, by: 200).isEmpty, "generation 1 still uses it")
        #expect(sets.hostExited(100) == [old], "freed when generation 1 drained, not when generation 2 goes")
        #expect(sets.offers(for: "www").map(\.id) == [new])
    }

    @Test func aRebuiltIdentityIsOfferedInItsNewestBuildOnly() {
        var sets = SharedDataSets()
        let first = sets.built(by: 100, pool: "www", generation: 1, identity: numbers, placement: placement)
        sets.handedOn([first], to: 200)
        // Generation 2 refused it (a doubtful header, say) and built its own.
        let second = sets.built(by: 200, pool: "www", generation: 2, identity: numbers, placement: DataSetPlacement(address: placement.end, size: 4096))
        #expect(sets.unused(first, by: 200).isEmpty)
        #expect(sets.offers(for: "www").map(\.id) == [second])
        #expect(sets.hostExited(100) == [first])
    }

    @Test func aHostThatFailsBeforeReadyReleasesWhatItBuilt() {
        var sets = SharedDataSets()
        let id = sets.built(by: 300, pool: "www", generation: 4, identity: numbers, placement: placement)
        #expect(sets.hostExited(300) == [id])
    }

    @Test func dataReportsSurviveTheirLine() {
        let built = HostReport.dataBuilt(numbers, placement)
        #expect(HostReport(line: String(built.line.dropLast())) == built)
        #expect(HostReport(line: String(HostReport.dataUnused(id: 12).line.dropLast())) == .dataUnused(id: 12))
        #expect(HostReport(line: "data-built dict\tdictionary\twords-1\tnot-a-number\t4096") == nil)
        #expect(!DataSetIdentity.isValidField("two words") && !DataSetIdentity.isValidField("") && DataSetIdentity.isValidField("sha256:ab12"))
    }
}
