import ArgumentParser
import Foundation
import XAI

struct Predict: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the top-K classes of each image (the first check that a model loaded right).")

    @Argument(help: "An ONNX file or a zoo model name.") var model: String
    @Argument(help: "Images (PNG, JPEG), preprocessed tensors (.npy), folders or .txt manifests.") var inputs: [String]
    @Option(help: "Classes to print per image.") var top = 5
    @Option(help: "cpu, gpu or gpu:N.") var device = "cpu"
    @Option(help: "Write each image's logits as <image-stem>.logits.npy into this folder.") var saveLogits: String?
    @Option(help: "Normalisation: imagenet, none or r,g,b/r,g,b (default: the model's .json sidecar, else imagenet).") var preset: String?
    @Option(help: "Shorter side after resizing, before the centre crop.") var resize: Int?

    func run() async throws {
        let graph = try Models.load(model)
        let backend = try Backends.make(try Device(parsing: device))
        let explained = try ExplainedModel(graph: graph, backend: backend)
        let sidecar = try Sidecar.load(for: model)
        let prep = try preprocessing(preset: preset, resize: resize, sidecar: sidecar)
        guard let input = graph.imageInput, let shape = try? input.shape(batch: 1), shape.rank == 4 else {
            throw ValidationError("\(model): needs one image input [N, 3, H, W]")
        }
        if let saveLogits { try FileManager.default.createDirectory(atPath: saveLogits, withIntermediateDirectories: true) }
        var failed = 0
        for file in try collectInputs(inputs, shard: nil) {
            do {
                for image in try prepare(file, height: shape[2], width: shape[3], preprocessing: prep) {
                    let logits = try explained.logits(try backend.upload(image.tensor))
                    let row = logits.scalars.map(Double.init)
                    let peak = row.max() ?? 0
                    let total = row.reduce(0) { $0 + exp($1 - peak) }
                    let best = row.indices.sorted { row[$0] > row[$1] }.prefix(max(1, top))
                    print("\(image.stem):")
                    for c in best {
                        let label = sidecar?.labels.flatMap { c < $0.count ? "  \($0[c])" : nil } ?? ""
                        print(String(format: "  %5d  p %.4f  logit %8.4f", c, exp(row[c] - peak) / total, row[c]) + label)
                    }
                    if let saveLogits { try NPY.write(logits, to: (saveLogits as NSString).appendingPathComponent("\(image.stem).logits.npy")) }
                }
            } catch {
                printError("error: \(error)")
                failed += 1
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }
}

struct Methods: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the explanation methods with their knobs and defaults.")

    func run() async throws {
        let width = methodDescriptions.map(\.0.count).max() ?? 0
        for (name, text) in methodDescriptions { print(name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + text) }
        print("\nall = every method that applies to the model (cam needs a global-average-pooling + linear head).")
    }
}
