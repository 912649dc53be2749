import Foundation
import XAI

/// Wall-clock statistics of repeated runs, after a warm-up that is not timed (it compiles kernels).
struct Timing: Codable {
    let runs: Int
    let min: Double, median: Double, max: Double

    /// `budget`: stop repeating once the timed runs add up to this many seconds (at least one run).
    /// `afterWarmup` runs between the warm-up and the timed runs (a profile's reset).
    static func measure(warmup: Int = 1, repeats: Int, budget: Double = .infinity, afterWarmup: () -> Void = {},
                        _ body: () throws -> Void) rethrows -> Timing {
        for _ in 0..<warmup { try body() }
        afterWarmup()
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

/// The GFLOP/s column's name: FLOPs are always counted as a direct convolution's, so where Winograd
/// may run (and do fewer multiplications) the column says "direct-equivalent", and rows can fall
/// below 1.0x their floor.
func gflopsColumn(_ backend: any Backend) -> String {
    backend.details.mayUseFastConvolutions ? "direct-eq GFLOP/s" : "GFLOP/s"
}

/// The line printed under a table whose GFLOP/s are direct-equivalent.
func printWinogradNote(_ backend: any Backend) {
    guard backend.details.mayUseFastConvolutions else { return }
    print("direct-eq: FLOPs counted as direct convolutions; 3x3 stride-1 layers may run on oneDNN's Winograd (XAI_CONV_ALGO=auto: forward-only passes; =winograd: all), which does fewer, so a row can be below 1.0x its floor.")
}

/// Whether the backend is OpenCL on a CPU (PoCL): slow enough that ceilings use smaller products.
func isOpenCLOnCPU(_ backend: any Backend) -> Bool { backend.device != .cpu && !backend.details.isGPU }

/// The backend's name and the facts it states about itself, for a benchmark's header.
func describe(_ backend: any Backend) -> String {
    ([backend.name] + backend.details.facts.map { "\($0.0): \($0.1)" }).joined(separator: "; ")
}
