import Foundation

/// Wall time spent in each node of a graph, forward and backward, summed over the passes an
/// ``Executor`` given it runs. Meaningful on synchronous backends (the CPU); on a queue-based one it
/// measures enqueueing. Thread-safe: one profile may watch several concurrent passes.
public final class OpProfile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let node: String
        public let op: String
        public let backward: Bool
        public var seconds: Double
        public var calls: Int
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    public init() {}

    func record(node: String, op: String, backward: Bool, seconds: Double) {
        let key = (backward ? "b:" : "f:") + node
        lock.lock()
        defer { lock.unlock() }
        entries[key, default: Entry(node: node, op: op, backward: backward, seconds: 0, calls: 0)].seconds += seconds
        entries[key]?.calls += 1
    }

    /// Runs `body` and records its time under `node`.
    func time<T>(_ node: Node, backward: Bool, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { record(node: node.name, op: node.op.name, backward: backward, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        return try body()
    }

    /// Every node's entry, slowest first.
    public var nodes: [Entry] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.sorted { $0.seconds > $1.seconds }
    }

    /// Entries summed by op kind and direction, slowest first.
    public var ops: [Entry] {
        var byOp: [String: Entry] = [:]
        for e in nodes {
            let key = (e.backward ? "b:" : "f:") + e.op
            byOp[key, default: Entry(node: "", op: e.op, backward: e.backward, seconds: 0, calls: 0)].seconds += e.seconds
            byOp[key]?.calls += e.calls
        }
        return byOp.values.sorted { $0.seconds > $1.seconds }
    }

    public func reset() {
        lock.lock()
        entries = [:]
        lock.unlock()
    }
}
