import COpenCL
import XAICore

extension OpenCLBackend {
    /// A 64-bit value as the two `uint` kernel arguments (low, high), passed as their bit patterns.
    func words(_ v: UInt64) -> [KernelArg] {
        [.int(Int(Int32(bitPattern: UInt32(truncatingIfNeeded: v)))), .int(Int(Int32(bitPattern: UInt32(truncatingIfNeeded: v >> 32))))]
    }

    public func noise(_ item: DeviceArray, plan: NoisePlan) throws -> DeviceArray {
        let out = try allocate(plan.outputShape)
        let per = plan.item.count
        try launch("random", "noise_copies", global: [(per + 3) / 4, plan.copies], [
            .buffer(try mem(item, "noise")), .buffer(try mem(out, "noise")), .int(per), .int(plan.copies), .float(plan.sigma),
        ] + words(plan.seed) + words(plan.firstStream))
        return out
    }

    public func runningSum(_ rows: DeviceArray, state: DeviceArray?, plan: RunningSumPlan) throws -> DeviceArray {
        let out = try allocate(plan.stateShape)
        try launch("random", "running_sum", global: [plan.itemCount], [
            .buffer(try mem(rows, "runningSum")), .buffer(try state.map { try mem($0, "runningSum") } ?? dummy), .buffer(try mem(out, "runningSum")),
            .int(plan.rows), .int(plan.itemCount), .int(plan.absolute ? 1 : 0), .int(state == nil ? 0 : 1),
        ])
        return out
    }
}
