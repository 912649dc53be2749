import XAICore

extension CPUBackend {
    // MARK: Device noise and running sums (the shared float32 definitions of XAICore)

    public func noise(_ item: DeviceArray, plan: NoisePlan) throws -> DeviceArray {
        let x = try ptr(item, "noise")
        let (out, po) = try allocate(plan.outputShape)
        let per = plan.item.count
        // Work units of 4096 values (a multiple of the generator's 4-value blocks), so one copy
        // spreads over the cores too.
        let unitsPerCopy = (per + 4095) / 4096
        parallelFor(plan.copies * unitsPerCopy, costPerItem: 4096 * 16) { r in
            for unit in r {
                let (k, part) = unit.quotientAndRemainder(dividingBy: unitsPerCopy)
                CounterRandom.addNoise(x, po + k * per, elements: (part * 4096)..<min(per, (part + 1) * 4096), sigma: plan.sigma,
                                       seed: plan.seed, stream: plan.firstStream &+ UInt64(k))
            }
        }
        return out
    }

    public func runningSum(_ rows: DeviceArray, state: DeviceArray?, plan: RunningSumPlan) throws -> DeviceArray {
        let r = try ptr(rows, "runningSum")
        let (out, po) = try allocate(plan.stateShape)
        let item = plan.itemCount
        if let state { po.update(from: try ptr(state, "runningSum"), count: 4 * item) } else { po.update(repeating: 0, count: 4 * item) }
        parallelFor(item, costPerItem: plan.rows * 8) { elements in
            RunningSum.add(r, rows: plan.rows, item: item, state: po, absolute: plan.absolute, elements: elements)
        }
        return out
    }
}
