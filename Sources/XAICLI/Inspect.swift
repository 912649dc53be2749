import ArgumentParser
import Foundation
import XAI

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a model: inputs, outputs, ops, parameters, FLOPs, unsupported ops and the layers CAM methods can use.")

    @Argument(help: "An ONNX file or a zoo model (\(Zoo.names.joined(separator: ", "))).")
    var model: String

    @Flag(help: "List every CAM candidate layer, not only the last 10.")
    var allLayers = false

    func run() throws {
        try reportingFlags { try inspect() }
    }

    func inspect() throws {
        let isFile = Models.isFile(model)
        var histogram: [String: Int] = [:]
        var unsupported: [(op: String, node: String)] = []
        var header: [String] = []
        if isFile {
            let info = try ONNXImporter.inspect(path: model)
            histogram = info.opHistogram
            unsupported = info.unsupported
            header.append("model     \(model) (ONNX opset \(info.opset)\(info.producer.isEmpty ? "" : ", from \(info.producer)"))")
        } else {
            header.append("model     \(model) (built-in zoo, seeded random weights)")
        }
        func shapeText(_ s: [Int?]) -> String { "[" + s.map { $0.map(String.init) ?? "N" }.joined(separator: "x") + "]" }
        if !unsupported.isEmpty {
            header.forEach { print($0) }
            print("unsupported ops (\(unsupported.count) nodes):")
            for u in unsupported.prefix(20) { print("  \(u.op)  node '\(u.node)'") }
            print("op histogram: " + histogram.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            throw ExitCode(2)
        }
        let raw = try Models.load(model, optimize: false)
        let graph = try raw.optimized()
        if !isFile {
            for n in raw.nodes { histogram[n.op.name, default: 0] += 1 }
        }
        let summary = try graph.summary()
        let explained = try ExplainedModel(graph: graph, backend: CPUBackend())
        let candidates = try explained.camCandidates()
        let defaultLayer = try? explained.camLayer(nil)
        header.forEach { print($0) }
        for i in graph.inputs {
            // An export without a dynamic batch axis: every method still runs, one copy at a time.
            let fixed = i.name == graph.imageInput?.name && i.shape.first == 1
                ? "  (batch fixed at 1: methods run one image and one copy at a time; export with a dynamic batch axis to batch them)" : ""
            print("input     \(i.name) \(shapeText(i.shape))\(fixed)")
        }
        for o in graph.outputs {
            print("output    \(o.name) \(summary.shapes[o.name].map { "[N" + $0.dims.dropFirst().map { "x\($0)" }.joined() + "]" } ?? shapeText(o.shape))")
        }
        print(String(format: "params    %.2f M", Double(raw.parameterCount) / 1e6))
        print(String(format: "FLOPs     %.3f GFLOP per image (convolutions and matrix products, 2 x multiply-adds)", summary.flopsPerImage / 1e9))
        print("ops       " + histogram.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("nodes     \(raw.nodes.count) as loaded, \(graph.nodes.count) after folding batch-norm, constants and activations")
        print("unsupported ops: none")
        print("CAM layers (4-D activations, then transformer tokens; * = default: a transformer's last block's first norm, else the last before global pooling):")
        var shown = allLayers ? candidates : Array(candidates.suffix(10))
        if let d = defaultLayer, !shown.contains(d) { shown.insert(d, at: 0) }
        if shown.count < candidates.count {
            print("  ... \(candidates.count - shown.count) more layers (--all-layers lists them)")
        }
        for c in shown {
            guard let s = summary.shapes[c] else { continue }
            let layout = (try? explained.camLayout(c)).map { "  \($0)" } ?? ""
            print("  \(c == defaultLayer ? "*" : " ") \(c)  [N" + s.dims.dropFirst().map { "x\($0)" }.joined() + "]" + layout)
        }
    }
}
