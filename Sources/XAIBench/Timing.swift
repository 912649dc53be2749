import Foundation

/// Wall-clock statistics of repeated runs, after a warm-up that is not timed (it compiles kernels).
struct Timing: Codable {
    let runs: Int
    let min: Double, median: Double, max: Double

    /// `budget`: stop repeating once the timed runs add up to this many seconds (at least one run).
    static func measure(warmup: Int = 1, repeats: Int, budget: Double = .infinity, _ body: () throws -> Void) rethrows -> Timing {
        for _ in 0..<warmup { try body() }
        var times: [Double] = []
        for _ in 0..<Swift.max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            if times.reduce(0, +) >= budget { break }
        }
        times.sort()
        return Timing(runs: times.count, min: times[0], median: times[times.count / 2], max: times[times.count - 1])
    }
}

func formatSeconds(_ s: Double) -> String {
    s >= 1 ? String(format: "%.2f s", s) : String(format: "%.2f ms", s * 1000)
}

/// Prints rows as an aligned Markdown table.
func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        "| " + cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: " | ") + " |"
    }
    print(line(header))
    print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
    for r in rows { print(line(r)) }
}
