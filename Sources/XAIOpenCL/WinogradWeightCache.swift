import Foundation
import XAICore

/// Winograd-transformed weights (`G g G^T`, [products, Cout, Cin]) kept while the weights they
/// came from live. A model uploads its weights once and no operation writes into an existing
/// array (every one allocates its output), so a layer's transform is the same for every batch of a
/// perturbation run: one launch and (m + 2)^2 / 9 times the weights' memory traffic saved per
/// convolution after the first.
///
/// An entry is keyed by the weights' storage object, held weakly: a storage released and a new
/// one made at the same address, or on the same pooled `cl_mem`, is a different object, and its
/// entry's reference reads `nil`. Dead entries are dropped on every lookup; the live ones are
/// bounded by `capacity` bytes (the oldest go first).
final class WinogradWeightCache: @unchecked Sendable {
    private struct Entry {
        weak var source: OpenCLStorage?
        let tile: WinogradTile
        let shape: Shape
        let transformed: DeviceArray
        var bytes: Int { transformed.shape.count * 4 }
    }

    let capacity: Int
    private var entries: [Entry] = []
    private let lock = NSLock()

    init(capacity: Int) { self.capacity = capacity }

    /// The transform of `weights` (shaped `shape`) for `tile`, made by `make` on a miss and kept
    /// when it fits.
    func transformed(of weights: OpenCLStorage, shape: Shape, tile: WinogradTile, make: () throws -> DeviceArray) throws -> DeviceArray {
        lock.lock()
        entries.removeAll { $0.source == nil }
        if let hit = entries.first(where: { $0.source === weights && $0.tile == tile && $0.shape == shape }) {
            lock.unlock()
            return hit.transformed
        }
        lock.unlock()
        let u = try make()
        lock.lock()
        defer { lock.unlock() }
        let entry = Entry(source: weights, tile: tile, shape: shape, transformed: u)
        guard entry.bytes <= capacity else { return u }
        while entries.reduce(0, { $0 + $1.bytes }) + entry.bytes > capacity { entries.removeFirst() }
        entries.append(entry)
        return u
    }

    /// Transforms kept now (for tests).
    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.filter { $0.source != nil }.count
    }
}
