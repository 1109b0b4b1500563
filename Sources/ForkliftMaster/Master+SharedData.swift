import ForkliftIPC
import ForkliftSystem
import Glibc

/// Keyed data sets: the master holds each one's memfd for the pools' later generations
/// (`SharedDataSets` decides how long) and hands them to every new host of the pool.
extension Master {
    /// The pool's sets, for a host about to be forked (their descriptors are inherited).
    func inheritedData(for pool: String) -> [InheritedDataSet] {
        dataSets.offers(for: pool).compactMap { entry in
            guard let descriptor = dataDescriptors[entry.id] else { return nil }
            return InheritedDataSet(id: entry.id, identity: entry.identity, placement: entry.placement, builtBy: entry.builtBy, descriptor: descriptor)
        }
    }

    func receiveData(_ report: HostReport, descriptor: Int32?, from pid: pid_t) {
        switch report {
        case .dataBuilt(let identity, let placement):
            guard let descriptor else {
                log.warning("pool \(core.hosts[pid]?.pool.name ?? "?") host pid \(pid) reported data of \(identity) without its memfd: later generations build it afresh")
                return
            }
            guard let host = core.hosts[pid] else {
                closeDescriptor(descriptor) // a host the core forgot: nobody will use it
                return
            }
            let id = dataSets.built(by: pid, pool: host.pool.name, generation: host.generation, identity: identity, placement: placement)
            dataDescriptors[id] = descriptor
            log.info("\(host.label): keeps shared data of \(identity), \(Formatting.mebibytes(placement.size)), for later generations")
        case .dataUnused(let id):
            releaseData(dataSets.unused(id, by: pid))
        default:
            break
        }
    }

    /// What an upgrade hands the new master: every set still offered to new hosts.
    func handedOnData() -> [Handoff.HandedOnData] {
        dataSets.entries.values.filter(\.offered).sorted { $0.id < $1.id }.compactMap { entry in
            dataDescriptors[entry.id].map {
                Handoff.HandedOnData(pool: entry.pool, identity: entry.identity, placement: entry.placement, builtBy: entry.builtBy, descriptor: $0)
            }
        }
    }

    /// The new master of an upgrade keeps the old one's sets for its first generations, which
    /// are offered them; sets none of them uses go once the upgrade is decided.
    func adoptData(_ sets: [Handoff.HandedOnData]) {
        for set in sets {
            try? setCloseOnExec(set.descriptor)
            let id = dataSets.built(by: SharedDataSets.previousMaster, pool: set.pool, generation: set.builtBy, identity: set.identity, placement: set.placement)
            dataDescriptors[id] = set.descriptor
        }
    }

    /// Closes the master's descriptors of sets no host uses any more.
    func releaseData(_ ids: [Int]) {
        for id in ids {
            closeDescriptor(dataDescriptors.removeValue(forKey: id) ?? -1)
        }
    }
}
