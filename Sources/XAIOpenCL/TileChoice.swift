import Foundation
import XAICore

/// A work-group's block of C: what a tile ladder's steps are compared by.
protocol BlockTile {
    /// Rows and columns of C one work-group computes.
    var blockRows: Int { get }
    var blockColumns: Int { get }
}

extension BlockTile {
    /// Work-groups a `rows x columns` GEMM (times `batch`) takes.
    func groups(rows: Int, columns: Int, batch: Int) -> Int {
        (rows + blockRows - 1) / blockRows * ((columns + blockColumns - 1) / blockColumns) * batch
    }

    /// Elements of C the grid computes, its blocks' padding past the edges included.
    func paddedArea(rows: Int, columns: Int) -> Int {
        (rows + blockRows - 1) / blockRows * blockRows * ((columns + blockColumns - 1) / blockColumns * blockColumns)
    }
}

extension GEMMConfig: BlockTile {
    var blockRows: Int { tile }
    var blockColumns: Int { tile }
}

extension MMATiling: BlockTile {}

/// How a launch of the tiled or tensor-core kernels picks its tile from a ladder, largest first
/// (``GEMMConfig/shrinking``, ``MMATiling/ladder``). Every step gives the same bits, so the
/// choice may follow the GEMM's shape: a batch of one image or a late 7 x 7 layer leaves a large
/// tile's grid with a handful of work-groups on a GPU of a hundred compute units, and a layer of 64
/// channels fills half of a 128-row tile.
public enum TileChoice: Sendable, Equatable, CustomStringConvertible {
    /// Among the tiles that pad the GEMM to at most 5/4 of the least padded area any step gives
    /// (so a 64-channel layer drops the 128-row tiles, and a 200-channel one keeps them), the
    /// largest whose grid gives each of `units` compute units a work-group, else the one with the
    /// most work-groups: every unit busy, at less reuse per load. GPUs' default, with `units` the
    /// device's.
    case fill(units: Int)
    /// Step `step` of the ladder for every launch (0, the configured tile: `XAI_SMALL_TILES=off`,
    /// and devices that are not GPUs, whose work-items are few and long-lived anyway).
    case fixed(step: Int)

    func pick<T: BlockTile>(_ ladder: [T], rows: Int, columns: Int, batch: Int) -> T {
        switch self {
        case .fixed(let step):
            return ladder[min(max(step, 0), ladder.count - 1)]
        case .fill(let units):
            let least = ladder.map { $0.paddedArea(rows: rows, columns: columns) }.min() ?? 0
            let lean = ladder.filter { 4 * $0.paddedArea(rows: rows, columns: columns) <= 5 * least }
            return lean.first { $0.groups(rows: rows, columns: columns, batch: batch) >= units }
                ?? lean.max { $0.groups(rows: rows, columns: columns, batch: batch) < $1.groups(rows: rows, columns: columns, batch: batch) }
                ?? ladder[0]
        }
    }

    /// `XAI_SMALL_TILES=on|off`; unset: ``fill(units:)`` on GPUs, the configured tile elsewhere.
    public static func initial(isGPU: Bool, computeUnits: Int, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TileChoice {
        let fill = TileChoice.fill(units: max(computeUnits, 1))
        switch environment["XAI_SMALL_TILES"]?.lowercased() {
        case nil, "": return isGPU ? fill : .fixed(step: 0)
        case "on": return fill
        case "off": return .fixed(step: 0)
        case let text?:
            throw XAIError.invalidArgument(parameter: "XAI_SMALL_TILES", value: text,
                                           reason: "must be on (smaller tiles where a grid leaves compute units idle or pads a small layer) or off")
        }
    }

    public var description: String {
        switch self {
        case .fill(let units): return "smaller tiles where a grid has fewer than \(units) work-groups or a tile pads a small layer (XAI_SMALL_TILES=off: never)"
        case .fixed(let step): return step == 0 ? "the configured tile for every grid" : "tile step \(step) for every grid"
        }
    }
}
