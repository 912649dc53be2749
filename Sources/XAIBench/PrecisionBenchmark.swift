import ArgumentParser
import Foundation
import XAI

/// `xai-bench precision`: maps under the tensor-core precisions against the same maps in fp32.
struct PrecisionBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precision",
        abstract: "Maps under --precision tf32 and 3xtf32 beside the same maps in fp32 (exact): relative error, Spearman rank correlation and time per method.",
        discussion: """
        Relative error = ||map - fp32 map|| / ||fp32 map|| over every pixel of every image; Spearman = the rank \
        correlation of the two maps' pixels, per image, the lowest shown. The row "cpu fp32" is the same maps on the \
        CPU backend, fp32 with other sums: the error any fp32 engine shows, the floor to read the others against. \
        A device without tensor cores runs \
        fp32 under every precision (the header says so, and the rows then show 0): set XAI_MMA=emulate to \
        emulate them, slowly, and see the precision's real error on any OpenCL device.
        """)

    @Option(help: "gpu or gpu:N (an OpenCL device; the CPU has no tensor cores).") var device = "gpu"
    @Option(name: [.customLong("model"), .customLong("models")], help: "Comma-separated zoo models or ONNX files.") var models = "resnet18"
    @Option(help: "Comma-separated methods.") var methods = "saliency,ig,gradcam"
    @Option(help: "Comma-separated precisions to compare with fp32.") var precisions = "tf32,3xtf32"
    @Option(help: "Random images (uniform in [-2, 2], seeded) per method.") var images = 2
    @Option(help: "Method knobs as JSON, for every method (e.g. '{\"steps\": 16}').") var knobs: String?
    @Option(help: "Write the rows as JSON to this file.") var json: String?

    struct Row: Codable {
        let model, method, precision, arithmetic: String
        let seconds, fp32Seconds, relativeError, minSpearman: Double
    }

    func run() throws {
        let dev = try Device(parsing: device)
        let compared = try precisions.split(separator: ",").map { try Precision(parsing: String($0)) }
        guard images >= 1 else { throw ValidationError("--images must be at least 1") }
        var configuration = MethodConfiguration()
        let given = try knobs.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:] } ?? [:]
        for (key, value) in given { try configuration.set(key, value) }
        let reference = try Backends.make(dev)
        // The precisions on the device, then the CPU's fp32 as the floor.
        let backends = try compared.map { try Backends.make(dev, precision: $0) } + [try Backends.make(.cpu)]
        let labels = compared.map(\.rawValue) + ["cpu fp32"]
        print("device:  \(describe(reference))")
        for (p, b) in zip(compared, backends) {
            print("\(p.rawValue): " + (b.details.facts.first { $0.0 == "tensor cores" }?.1 ?? "no tensor cores on this backend: GEMMs run fp32"))
        }
        var rows: [Row] = []
        print("model     method      precision  fp32 time   time       rel. error  min Spearman")
        for name in models.split(separator: ",").map(String.init) {
            let graph = try Models.load(name)
            guard let input = graph.imageInput else { throw ValidationError("--models: \(name) has no image input") }
            let shape = try input.shape(batch: 1)
            let inputs = (0..<images).map { Tensor.uniform(shape, in: -2...2, seed: 11 + UInt64($0)) }
            let sessions = try ([reference] + backends).map { try Session(source: name, model: try ExplainedModel(graph: graph, backend: $0)) }
            for m in methods.split(separator: ",").map(String.init) {
                // Each precision's maps for every image, and their time after a warm-up.
                let runs = try sessions.map { session -> (maps: [Tensor], seconds: Double) in
                    let method = try session.method(m, configuration: configuration)
                    _ = try method.method.attribute(inputs[0], target: .predicted, baseline: method.baseline)
                    var maps: [Tensor] = []
                    let start = DispatchTime.now().uptimeNanoseconds
                    for x in inputs { maps.append(try method.method.attribute(x, target: .predicted, baseline: method.baseline).map) }
                    return (maps, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(images))
                }
                for (i, label) in labels.enumerated() {
                    let (error, spearman) = Self.compare(runs[i + 1].maps, runs[0].maps)
                    let ranFP32 = i < compared.count && !backends[i].details.tensorCores
                    let arithmetic = i < compared.count && !ranFP32 ? label : "fp32"
                    rows.append(Row(model: name, method: m, precision: label, arithmetic: arithmetic, seconds: runs[i + 1].seconds,
                                    fp32Seconds: runs[0].seconds, relativeError: error, minSpearman: spearman))
                    print(name.padding(toLength: 10, withPad: " ", startingAt: 0) + m.padding(toLength: 12, withPad: " ", startingAt: 0)
                          + (label + (ranFP32 ? " (ran fp32)" : "")).padding(toLength: 11, withPad: " ", startingAt: 0)
                          + formatSeconds(runs[0].seconds).padding(toLength: 11, withPad: " ", startingAt: 0)
                          + formatSeconds(runs[i + 1].seconds).padding(toLength: 11, withPad: " ", startingAt: 0)
                          + String(format: "%-11.3g %.6f", error, spearman))
                }
            }
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }

    /// The L2 distance of `maps` from `reference` relative to the reference's norm, over all
    /// images, and the lowest per-image Spearman rank correlation of their pixels.
    static func compare(_ maps: [Tensor], _ reference: [Tensor]) -> (relativeError: Double, minSpearman: Double) {
        var difference = 0.0, norm = 0.0, spearman = 1.0
        for (a, r) in zip(maps, reference) {
            for (x, y) in zip(a.scalars, r.scalars) {
                difference += Double(x - y) * Double(x - y)
                norm += Double(y) * Double(y)
            }
            spearman = min(spearman, Similarity.spearman(a.scalars.map(Double.init), r.scalars.map(Double.init)))
        }
        return ((difference / max(norm, 1e-30)).squareRoot(), spearman)
    }
}
