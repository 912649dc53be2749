import Foundation
import XAI

/// One line of `metrics.jsonl`: one image x method x metric.
public struct MetricRecord: Codable, Sendable {
    public var image: String
    public var stem: String
    public var method: String
    public var metric: String
    public var score: Double
    public var direction: String
    public var target: Int
    public var settings: [String: String]
    public var seconds: Double
    /// The curve of deletion and insertion.
    public var curve: [Double]?

    public init(image: String, stem: String, method: String, metric: String, score: Double, direction: String, target: Int,
                settings: [String: String], seconds: Double, curve: [Double]?) {
        (self.image, self.stem, self.method, self.metric, self.score, self.direction, self.target, self.settings, self.seconds, self.curve) =
            (image, stem, method, metric, score, direction, target, settings, seconds, curve)
    }
}

/// Means and standard errors of every method x metric with the best method per column: the
/// table `xai evaluate` prints and the report shows.
public struct MetricTable {
    /// Metrics in the registry's order, methods in the order met.
    public let metrics: [String]
    public let methods: [String]
    private let cells: [String: MetricResult]
    public let best: [String: String]

    public init(_ scores: [(method: String, metric: String, values: [Double])]) {
        metrics = MetricRegistry.names.filter { m in scores.contains { $0.metric == m } }
        methods = scores.reduce(into: [String]()) { if !$0.contains($1.method) { $0.append($1.method) } }
        var cells: [String: MetricResult] = [:]
        for s in scores {
            cells[s.method + "\u{0}" + s.metric] = MetricResult(metric: s.metric, direction: Self.direction(s.metric), scores: s.values, settings: [:])
        }
        self.cells = cells
        var best: [String: String] = [:]
        for metric in metrics {
            let ranked = methods.compactMap { m in cells[m + "\u{0}" + metric].flatMap { $0.mean.isFinite ? (m, $0.mean) : nil } }
            best[metric] = (Self.direction(metric) == .lowerIsBetter ? ranked.min { $0.1 < $1.1 } : ranked.max { $0.1 < $1.1 })?.0
        }
        self.best = best
    }

    public static func direction(_ metric: String) -> MetricDirection { (try? MetricRegistry.spec(metric).direction) ?? .higherIsBetter }

    public func cell(_ method: String, _ metric: String) -> MetricResult? { cells[method + "\u{0}" + metric] }

    public static func header(_ metric: String) -> String { metric + (direction(metric) == .lowerIsBetter ? " (lower)" : " (higher)") }

    /// `mean +- standard error (n)`.
    public static func text(_ s: MetricResult) -> String {
        (s.mean.isFinite ? String(format: "%.3f", s.mean) : "nan") + (s.standardError.isFinite ? String(format: " +- %.3f", s.standardError) : "") + " (\(s.count))"
    }
}
